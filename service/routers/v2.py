"""KServe Open Inference Protocol V2 over REST: health, metadata, Triton's model configuration
and statistics (the infer routes are hot routes: `service.fastpath`).

Health answers by status code (200 true, 400 false) with a body saying the same
(`{"live": true}`, `{"ready": ...}`, `{"name": ..., "ready": ...}`), as KServe's server does;
errors are `{"error": "..."}`. Every model route also exists for one version
(`/v2/models/{name}/versions/{version}/...`); an unknown version is a 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Path, Response

from service.fastpath import openapi
from service.repository import ModelHandle, ModelState
from service.routers.deps import State
from service.routers.responses import OrjsonResponse
from service.serving import Serving
from service.v2 import model_metadata, server_metadata
from service.v2.model_config import model_config

router = APIRouter(prefix="/v2", tags=["v2"])
NOT_READY = 400  # the protocol: "a 4xx status code indicates false"

ModelName = Annotated[str, Path(description="model name")]
ModelVersion = Annotated[str, Path(description="model version (`versions` in its metadata)")]
ModelAnswer = Callable[[Serving, ModelHandle], Response]


@router.get("", operation_id="server_metadata", responses=openapi.ok("ServerMetadata"))
@router.get("/", include_in_schema=False)
async def server_metadata_endpoint() -> Response:
    """Server metadata: name, version, extensions."""
    return OrjsonResponse(server_metadata())


@router.get("/health/live", operation_id="server_live", responses=openapi.ok("ServerLive"))
async def server_live() -> Response:
    return OrjsonResponse({"live": True})


@router.get(
    "/health/ready",
    operation_id="server_ready",
    responses={
        **openapi.ok("ServerReady"),
        str(NOT_READY): openapi.json_response("ServerReady", "Not ready: `ready` is false."),
    },
)
async def server_ready(state: State) -> Response:
    """Ready once the models are (see `GET /health/ready` for why not)."""
    ready = state.repository.ready
    return OrjsonResponse({"ready": ready}, status_code=200 if ready else NOT_READY)


# Before the model routes: `/models/{name}` would take it for a model named `stats`.
@router.get(
    "/models/stats",
    operation_id="models_stats",
    responses=openapi.ok("ModelStatisticsResponse"),
)
async def models_stats(state: State) -> Response:
    """Statistics of every model (Triton's)."""
    return OrjsonResponse(state.metrics.statistics.report(state.repository.handles))


def _add_model_routes(
    kind: str, suffix: str, answer: ModelAnswer, responses: openapi.Responses
) -> None:
    """`GET /v2/models/{name}<suffix>` and `GET /v2/models/{name}/versions/{version}<suffix>`,
    both answered by `answer` (its docstring documents them)."""

    async def latest(name: ModelName, state: State) -> Response:
        return answer(state, state.repository.get(name))

    async def versioned(name: ModelName, version: ModelVersion, state: State) -> Response:
        return answer(state, state.repository.get(name, version))

    for path, endpoint, operation_id in (
        (f"/models/{{name}}{suffix}", latest, f"model_{kind}"),
        (f"/models/{{name}}/versions/{{version}}{suffix}", versioned, f"model_version_{kind}"),
    ):
        router.add_api_route(
            path,
            endpoint,
            methods=["GET"],
            operation_id=operation_id,
            name=operation_id,
            description=answer.__doc__,
            responses=responses,
        )


def _ready(state: Serving, handle: ModelHandle) -> Response:
    """Whether the model is READY: 200 `{"name", "ready": true}`, else 400 and false."""
    ready = handle.state is ModelState.READY
    body = {"name": handle.name, "ready": ready}
    return OrjsonResponse(body, status_code=200 if ready else NOT_READY)


def _metadata(state: Serving, handle: ModelHandle) -> Response:
    """Model metadata; the batch dimension is -1."""
    return OrjsonResponse(model_metadata(handle, state.repository.version_names(handle.name)))


def _config(state: Serving, handle: ModelHandle) -> Response:
    """The model's configuration in Triton's model-config schema."""
    return OrjsonResponse(model_config(handle))


def _stats(state: Serving, handle: ModelHandle) -> Response:
    """The model's statistics (Triton's)."""
    return OrjsonResponse(state.metrics.statistics.report([handle]))


_add_model_routes(
    "ready",
    "/ready",
    _ready,
    {
        **openapi.ok("ModelReady"),
        str(NOT_READY): openapi.json_response("ModelReady", "Not ready: `ready` is false."),
        **openapi.errors(404),
    },
)
_add_model_routes(
    "config", "/config", _config, {**openapi.ok("ModelConfig"), **openapi.errors(404, 503)}
)
_add_model_routes(
    "stats", "/stats", _stats, {**openapi.ok("ModelStatisticsResponse"), **openapi.errors(404)}
)
_add_model_routes(
    "metadata", "", _metadata, {**openapi.ok("ModelMetadata"), **openapi.errors(404, 503)}
)

"""Triton's model repository extension over REST (`service.v2.model_repository`): the index
of the models, and loading and unloading them at run time.

Every body is optional and read as JSON whatever its Content-Type, as Triton does (its clients
send none); a load or unload answers `{}` once it took effect.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from service.auth import require_management
from service.config import validation_problems
from service.errors import InvalidInput
from service.fastpath import openapi
from service.routers.deps import State
from service.routers.responses import OrjsonResponse
from service.v2.model_repository import load_model, repository_index, unload_model

# Loads and unloads need the API token; the index is a read (`service.app` guards reads).
MANAGEMENT = [Depends(require_management)]

router = APIRouter(prefix="/v2/repository", tags=["repository"])

ModelName = Annotated[str, Path(description="model name")]
BodyT = TypeVar("BodyT", bound=BaseModel)


class _Body(BaseModel):
    """A request body (documented in `service.fastpath.openapi.SCHEMAS`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class IndexRequest(_Body):
    ready: bool = False


class LoadParameters(_Body):
    config: str | None = None


class LoadRequest(_Body):
    parameters: LoadParameters = LoadParameters()


class UnloadParameters(_Body):
    unload_dependents: bool = False


class UnloadRequest(_Body):
    parameters: UnloadParameters = UnloadParameters()


async def _body(request: Request, kind: type[BodyT]) -> BodyT:
    """The body as `kind` (an empty one: its defaults); `InvalidInput` naming each problem."""
    raw = await request.body()
    try:
        return kind.model_validate_json(raw) if raw.strip() else kind()
    except ValidationError as error:
        problems = "; ".join(validation_problems(error, None))
        raise InvalidInput(f"invalid request body: {problems}") from None


@router.post(
    "/index",
    operation_id="repository_index",
    responses={**openapi.ok("RepositoryIndexResponse"), **openapi.errors(400)},
    openapi_extra=openapi.optional_body("RepositoryIndexRequest"),
)
async def index(request: Request, state: State) -> Response:
    """Every served model version, and the unloaded models (`UNAVAILABLE` with the reason)."""
    body = await _body(request, IndexRequest)
    return OrjsonResponse(repository_index(state.repository, body.ready))


@router.post(
    "/models/{name}/load",
    operation_id="repository_model_load",
    dependencies=MANAGEMENT,
    responses={**openapi.ok("RepositoryModelResponse"), **openapi.errors(400, 401, 403, 404, 503)},
    openapi_extra=openapi.optional_body("RepositoryLoadRequest"),
)
async def load(name: ModelName, request: Request, state: State) -> Response:
    """Load model `name` from the config given, or reload it; answers once it serves. A load
    that fails is a 400 with the reason; the versions already served keep serving."""
    body = await _body(request, LoadRequest)
    await load_model(state.manager, name, body.parameters.config)
    return OrjsonResponse({})


@router.post(
    "/models/{name}/unload",
    operation_id="repository_model_unload",
    dependencies=MANAGEMENT,
    responses={**openapi.ok("RepositoryModelResponse"), **openapi.errors(400, 401, 403, 404)},
    openapi_extra=openapi.optional_body("RepositoryUnloadRequest"),
)
async def unload(name: ModelName, request: Request, state: State) -> Response:
    """Stop serving model `name`: new requests get 404 at once, queued ones are answered."""
    await _body(request, UnloadRequest)
    await unload_model(state.manager, name)
    return OrjsonResponse({})

"""KServe Open Inference Protocol V2 over REST.

Health answers by status code (200 true, 400 false); errors are `{"error": "..."}`. Infer
takes JSON tensors (flat or nested data) that are the model's input directly: no image
decoding. See `service.v2` for the datatypes accepted.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.repository import ModelState
from service.routers.deps import State
from service.routers.responses import OrjsonResponse
from service.v2 import (
    check_version,
    model_metadata,
    server_metadata,
)

router = APIRouter(prefix="/v2", tags=["v2"])
NOT_READY = 400  # the protocol: "a 4xx status code indicates false"


@router.get("")
async def server_metadata_endpoint() -> Response:
    """Server metadata: name, version, extensions."""
    return OrjsonResponse(server_metadata())


@router.get("/health/live")
async def server_live() -> Response:
    return Response(status_code=200)


@router.get("/health/ready")
async def server_ready(state: State) -> Response:
    return Response(status_code=200 if state.repository.ready else NOT_READY)


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(name: str, state: State, version: str | None = None) -> Response:
    handle = state.repository.get(name)
    check_version(handle, version)
    return Response(status_code=200 if handle.state is ModelState.READY else NOT_READY)


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata_endpoint(name: str, state: State, version: str | None = None) -> Response:
    """Model metadata; the batch dimension is -1."""
    handle = state.repository.get(name)
    check_version(handle, version)
    return OrjsonResponse(model_metadata(handle))

"""`GET /health/live` and `GET /health/ready` (ready once the default model is READY)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from service.routers.common import OrjsonResponse, Serving, serving

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> Response:
    """The process is up and answering."""
    return OrjsonResponse({"status": "live"})


@router.get("/ready")
async def ready(state: Annotated[Serving, Depends(serving)]) -> Response:
    """200 once the default model is READY; 503 (with its state and reason) until then."""
    repository = state.repository
    default = repository.get()
    body = {"default_model": default.name, "state": str(default.state)}
    if repository.ready:
        return OrjsonResponse({"status": "ready", **body})
    return OrjsonResponse(
        {"status": "not ready", **body, "reason": default.reason}, status_code=503
    )

"""`GET /health/live` and `GET /health/ready` (see `ModelRepository.ready`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.routers.deps import State
from service.routers.responses import OrjsonResponse

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> Response:
    """The process is up and answering."""
    return OrjsonResponse({"status": "live"})


@router.get("/ready")
async def ready(state: State) -> Response:
    """200 once every model is READY (only the default one without `server.strict_readiness`);
    503 naming the models not ready, or the shutdown, until then."""
    repository = state.repository
    default = repository.get()
    body = {"default_model": default.name, "state": str(default.state)}
    reason = repository.not_ready_reason
    if reason is None:
        return OrjsonResponse({"status": "ready", **body})
    return OrjsonResponse({"status": "not ready", **body, "reason": reason}, status_code=503)

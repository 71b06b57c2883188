"""`GET /health/live` and `GET /health/ready` (see `ModelRepository.ready`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.repository import ModelState
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
    if repository.ready:
        return OrjsonResponse({"status": "ready", **body})
    if repository.draining:
        reason = "shutting down"
    elif default.reason is not None:
        reason = default.reason
    else:
        handles = repository.handles
        waiting = [f"{h.name} {h.state}" for h in handles if h.state is not ModelState.READY]
        reason = f"models not ready: {', '.join(waiting)}"
    return OrjsonResponse({"status": "not ready", **body, "reason": reason}, status_code=503)

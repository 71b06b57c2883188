"""`GET /metrics`: Prometheus text exposition."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.routers.deps import State

router = APIRouter(tags=["metrics"])


@router.get("/metrics")
async def metrics(state: State) -> Response:
    """Requests by model/status/protocol, queue/compute/total latency, batch sizes, queue
    depth and model state."""
    return Response(state.metrics.render(), media_type=state.metrics.content_type)

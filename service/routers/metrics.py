"""`GET /metrics`: Prometheus text exposition."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from service.routers.common import Serving, serving

router = APIRouter(tags=["metrics"])


@router.get("/metrics")
async def metrics(state: Annotated[Serving, Depends(serving)]) -> Response:
    """Requests by model/status/protocol, queue/compute/total latency, batch sizes, queue
    depth and model state."""
    return Response(state.metrics.render(), media_type=state.metrics.content_type)

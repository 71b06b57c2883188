"""`GET /models`, `GET /models/{name}` (the bundle manifest) and `.../summary`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import PlainTextResponse

from service.routers.common import OrjsonResponse, Serving, serving

router = APIRouter(prefix="/models", tags=["models"])


@router.get("")
async def list_models(state: Annotated[Serving, Depends(serving)]) -> Response:
    """Every model with its state (and failure reason), format, device, batching, training."""
    repository = state.repository
    return OrjsonResponse(
        {
            "default": repository.default_name,
            "models": [handle.describe() for handle in repository.handles],
        }
    )


@router.get("/{name}")
async def model_manifest(name: str, state: Annotated[Serving, Depends(serving)]) -> Response:
    """The model's bundle manifest (weights, input, outputs, preprocess, parity, files...)."""
    handle = state.repository.get(name)
    return OrjsonResponse(handle.ready().manifest)


@router.get("/{name}/summary")
async def model_summary(
    name: str,
    state: Annotated[Serving, Depends(serving)],
    format: Annotated[Literal["text", "json", "mermaid"], Query()] = "text",
) -> Response:
    """The architecture summary: torchsummary `text`, `json`, or a `mermaid` diagram."""
    handle = state.repository.get(name)
    summary = await asyncio.to_thread(handle.summary)
    if format == "json":
        return OrjsonResponse(summary.to_json())
    text = summary.to_text() if format == "text" else summary.to_mermaid()
    return PlainTextResponse(text)

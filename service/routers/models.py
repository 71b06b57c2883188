"""`GET /models`, `GET /models/{name}` (the bundle manifest) and `.../summary`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from service.fastpath import openapi
from service.routers.deps import State
from service.routers.responses import OrjsonResponse

router = APIRouter(prefix="/models", tags=["models"])
# Manifest entries not served: the library versions the bundle was built with.
PRIVATE_KEYS = frozenset({"versions"})


@router.get("")
async def list_models(state: State) -> Response:
    """Every model with its state (and failure reason), format, device, batching, training."""
    repository = state.repository
    return OrjsonResponse(
        {
            "default": repository.default_name,
            "models": [handle.describe() for handle in repository.handles],
        }
    )


@router.get("/{name}", responses=openapi.errors(404, 503))
async def model_manifest(name: str, state: State) -> Response:
    """The model's bundle manifest without library versions (weights, input, outputs, parity,
    files, and the preprocess and labels it was exported with), plus `serving`: the preprocess
    and labels in use, the config's values resolved against the manifest's."""
    loaded = state.repository.get(name).ready()
    serving = {"preprocess": loaded.preprocess.to_dict(), "labels": loaded.labels}
    public = {key: value for key, value in loaded.manifest.items() if key not in PRIVATE_KEYS}
    return OrjsonResponse({**public, "serving": serving})


@router.get("/{name}/summary", responses=openapi.errors(400, 404, 503))
async def model_summary(
    name: str,
    state: State,
    format: Annotated[Literal["text", "json", "mermaid"], Query()] = "text",
) -> Response:
    """The architecture summary the bundle manifest records: torchsummary `text`, `json`, or a
    `mermaid` diagram."""
    handle = state.repository.get(name)
    if format == "json":
        return OrjsonResponse(handle.ready().manifest["summary"])
    summary = handle.summary()
    render = summary.to_text if format == "text" else summary.to_mermaid
    return PlainTextResponse(await asyncio.to_thread(render))

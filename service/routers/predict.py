"""`POST /predict` and `POST /models/{name}/predict`: images in, top-k classes out."""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response

from service.config import LimitsConfig
from service.imaging import Preprocess, decode_images, split_body
from service.repository import ModelHandle
from service.routers.common import (
    OrjsonResponse,
    Serving,
    check_deadline,
    infer_unless_disconnected,
    read_body,
    recorded,
    request_deadline,
    serving,
)

router = APIRouter(tags=["predict"])

IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": "One or many images: multipart files, one raw image, or base64 JSON.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["images"],
                    "properties": {
                        "images": {
                            "type": "array",
                            "items": {"type": "string", "description": "base64 or data: URL"},
                        }
                    },
                }
            },
        },
    },
    "parameters": [
        {
            "name": "X-Request-Timeout-Ms",
            "in": "header",
            "required": False,
            "schema": {"type": "number", "exclusiveMinimum": 0},
            "description": "Deadline for the request; 504 when exceeded.",
        }
    ],
}
TopK = Annotated[int | None, Query(ge=1, description="classes per image (clamped)")]


@router.post("/predict", openapi_extra=IMAGE_BODY)
async def predict(
    request: Request,
    state: Annotated[Serving, Depends(serving)],
    model: Annotated[str | None, Query(description="model name; default model if absent")] = None,
    top_k: TopK = None,
) -> Response:
    """Classify the images in the body with `model` (the default model if absent)."""
    return await _predict(request, state, model, top_k)


@router.post("/models/{name}/predict", openapi_extra=IMAGE_BODY)
async def predict_with(
    request: Request, name: str, state: Annotated[Serving, Depends(serving)], top_k: TopK = None
) -> Response:
    """Classify the images in the body with model `name`."""
    return await _predict(request, state, name, top_k)


async def _predict(request: Request, state: Serving, name: str | None, top_k: int | None):
    with recorded(state.metrics) as record:
        deadline = request_deadline(request)
        handle = state.repository.get(name)
        record.model = handle.name
        loaded = handle.ready()
        batch = await _decode(request, state, handle, loaded.preprocess)
        check_deadline(deadline, "decoding images")
        logits = await infer_unless_disconnected(request, handle, batch, deadline)
        predictions = top_k_predictions(logits, loaded.labels, top_k or handle.config.top_k)
        record.status = 200
        return OrjsonResponse({"model": handle.name, "predictions": predictions})


async def _decode(
    request: Request, state: Serving, handle: ModelHandle, preprocess: Preprocess
) -> np.ndarray:
    """Read and decode the body in the decode pool, announced so batchers may wait for it."""
    limits = state.config.server.limits
    with handle.announce():
        body = await read_body(request, limits.max_body_bytes)
        work = functools.partial(
            prepare_images, request.headers.get("content-type"), body, preprocess, limits
        )
        return await asyncio.get_running_loop().run_in_executor(state.decode_pool, work)


def prepare_images(
    content_type: str | None, body: bytes, preprocess: Preprocess, limits: LimitsConfig
) -> np.ndarray:
    """Body -> preprocessed (N, C, H, W) float32 batch. Blocking: runs in the decode pool."""
    blobs = split_body(content_type, body, limits.max_images_per_request)
    return decode_images(blobs, preprocess, limits.max_image_pixels)


def top_k_predictions(logits: np.ndarray, labels: list[str], top_k: int) -> list[list[dict]]:
    """Softmax scores of the `top_k` best classes per image (`top_k` clamped to the classes)."""
    logits = logits.astype(np.float64)  # (N, K)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    scores = exp / exp.sum(axis=1, keepdims=True)
    best = np.argsort(-scores, axis=1, kind="stable")[:, : min(top_k, scores.shape[1])]
    return [
        [{"label": labels[i], "index": int(i), "score": float(row[i])} for i in indices]
        for row, indices in zip(scores, best, strict=True)
    ]

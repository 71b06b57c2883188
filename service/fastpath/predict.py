"""`POST /predict` and `POST /models/{name}/predict`: images in, top-k classes out."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from service.config import ServerConfig
from service.errors import InvalidInput
from service.fastpath.exchange import Exchange
from service.imaging import Preprocess, open_images, preprocess_images, split_body
from service.postprocess import top_k_predictions
from service.serving import Serving


async def predict(serving: Serving, exchange: Exchange, params: dict[str, str]) -> None:
    """Classify the body's images with model `name` (query `model`, else the default)."""
    query = exchange.query()
    name = params.get("name") or query.get("model")
    top_k = _top_k(query.get("top_k"))
    deadline = exchange.deadline()
    handle = serving.repository.get(name)
    exchange.model, exchange.version = handle.name, handle.version
    server = serving.config.server
    with (
        handle.admission() as loaded,
        exchange.held_body(serving.bodies, serving.decoder) as body_reader,
    ):
        body = await body_reader.read(server.limits.max_body_bytes, deadline)
        batch = await _decode(serving, exchange.content_type, body, loaded.preprocess, deadline)
    logits = await exchange.until_answered(handle.submit(batch, deadline))
    predictions = top_k_predictions(logits, loaded.labels, top_k or handle.config.top_k)
    await exchange.send_json(200, {"model": handle.name, "predictions": predictions})


async def _decode(
    serving: Serving,
    content_type: str | None,
    body: bytes,
    preprocess: Preprocess,
    deadline: float | None,
) -> np.ndarray:
    """Small bodies of small images on the event loop; the rest in the decode pool."""
    server = serving.config.server
    if len(body) > server.imaging.inline_max_bytes:
        work = functools.partial(prepare_images, content_type, body, preprocess, server)
        return await serving.decoder.run(work, deadline)
    images = open_body_images(content_type, body, server)
    if all(image.width * image.height <= server.imaging.inline_max_pixels for image in images):
        return preprocess_images(images, preprocess)
    return await serving.decoder.run(
        functools.partial(preprocess_images, images, preprocess), deadline
    )


def prepare_images(
    content_type: str | None, body: bytes, preprocess: Preprocess, server: ServerConfig
) -> np.ndarray:
    """Body -> preprocessed (N, C, H, W) float32 batch. Blocking: runs in the decode pool."""
    return preprocess_images(open_body_images(content_type, body, server), preprocess)


def open_body_images(
    content_type: str | None, body: bytes, server: ServerConfig
) -> list[Image.Image]:
    """The body's images with their headers read and checked (format, pixel count)."""
    limits = server.limits
    blobs = split_body(content_type, body, limits.max_images_per_request)
    return open_images(blobs, server.imaging.formats, limits.max_image_pixels)


def _top_k(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise InvalidInput(f"top_k: must be a positive integer, got {value[:32]!r}")
    return int(value)

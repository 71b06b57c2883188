"""What the REST routers share: the serving state, orjson responses, body limits, deadlines,
and per-request metrics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from service.config import RepositoryConfig
from service.errors import (
    ClientDisconnected,
    DeadlineExceeded,
    InvalidInput,
    PayloadTooLarge,
    ServingError,
)
from service.metrics import Metrics
from service.repository import ModelHandle, ModelRepository

PROTOCOL = "rest"
TIMEOUT_HEADER = "x-request-timeout-ms"


class OrjsonResponse(JSONResponse):
    """JSON via orjson (numpy arrays and scalars included)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


@dataclass(frozen=True)
class Serving:
    """Everything a request handler needs, built by the app lifespan."""

    config: RepositoryConfig
    repository: ModelRepository
    metrics: Metrics
    decode_pool: ThreadPoolExecutor


async def serving(request: Request) -> Serving:
    """FastAPI dependency: the app's serving state."""
    return request.app.state.serving


def error_response(error: ServingError) -> OrjsonResponse:
    body: dict[str, Any] = {"error": error.message}
    headers = {}
    if hasattr(error, "available"):
        body["available"] = error.available
    if hasattr(error, "retry_after_s"):
        headers["Retry-After"] = str(max(1, round(error.retry_after_s)))
    return OrjsonResponse(body, status_code=error.http_status, headers=headers)


def request_deadline(request: Request) -> float | None:
    """`X-Request-Timeout-Ms` as an absolute time.monotonic() deadline."""
    value = request.headers.get(TIMEOUT_HEADER)
    if value is None:
        return None
    try:
        milliseconds = float(value)
    except ValueError:
        milliseconds = float("nan")
    if not milliseconds > 0 or milliseconds == float("inf"):
        raise InvalidInput(
            f"X-Request-Timeout-Ms must be a positive number of milliseconds, got {value!r}"
        )
    return time.monotonic() + milliseconds / 1000


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or `PayloadTooLarge` as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the {limit}-byte limit")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientDisconnected("client disconnected while sending the body") from None
    return b"".join(chunks)


async def infer_unless_disconnected(
    request: Request, handle: ModelHandle, batch: np.ndarray, deadline: float | None
) -> np.ndarray:
    """`handle.infer`, abandoned (dropped before compute if not started) if the client leaves,
    which raises `ClientDisconnected`."""
    inference = asyncio.ensure_future(handle.infer(batch, deadline))
    departure = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({inference, departure}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        departure.cancel()
        if not inference.done():
            inference.cancel()
            await asyncio.wait({inference})  # the batcher has now dropped it
    if inference.cancelled():
        raise ClientDisconnected("client disconnected before its answer was ready")
    return inference.result()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


class RequestRecord:
    """Counts one inference request in the metrics, with the status it ends with."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.model = ""  # stays empty for unknown models: client input never becomes a label
        self.status = 500
        self.started = time.monotonic()


@contextlib.contextmanager
def recorded(metrics: Metrics) -> Iterator[RequestRecord]:
    record = RequestRecord(metrics)
    try:
        yield record
    except ServingError as error:
        record.status = error.http_status
        raise
    finally:
        seconds = time.monotonic() - record.started
        metrics.record_request(record.model, record.status, PROTOCOL, seconds)


def check_deadline(deadline: float | None, what: str) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceeded(f"deadline exceeded while {what}")

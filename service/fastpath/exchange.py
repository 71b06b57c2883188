"""One HTTP request and its answer on raw ASGI: what the hot routes need, nothing more.

Reading the body is bounded (size, the server-wide byte budget, the deadline) and a client
that leaves is noticed while its answer is computed, without a task per chunk or a
framework layer in between.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from service.budget import ByteBudget
from service.errors import (
    ClientDisconnected,
    DeadlineExceeded,
    InvalidInput,
    PayloadTooLarge,
    ServingError,
    error_payload,
)
from service.http import compression
from service.http.protocol import DISCONNECT_EXTENSION
from service.offload import Offloader

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TIMEOUT_HEADER = b"x-request-timeout-ms"
JSON_CONTENT_TYPE = b"application/json"
# Answers may be compressed as the request's Accept-Encoding asks.
VARY_HEADER = (b"vary", b"Accept-Encoding")


class Exchange:
    """The request's scope, receive and send, with the hot routes' helpers."""

    __slots__ = ("headers", "model", "receive", "scope", "send", "started", "status", "version")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.headers: dict[bytes, bytes] = dict(scope["headers"])
        self.started = time.monotonic()
        self.status = 500  # what the metrics record if nothing else is answered
        # Set once known: client input never becomes a metrics label.
        self.model = ""
        self.version = ""

    def query(self) -> dict[str, str]:
        raw = self.scope["query_string"]
        return dict(parse_qsl(raw.decode("latin-1"))) if raw else {}

    def deadline(self) -> float | None:
        """`X-Request-Timeout-Ms` as an absolute time.monotonic() deadline."""
        value = self.headers.get(TIMEOUT_HEADER)
        if value is None:
            return None
        try:
            milliseconds = float(value)
        except ValueError:
            milliseconds = float("nan")
        if not milliseconds > 0 or milliseconds == float("inf"):
            raise InvalidInput(
                "X-Request-Timeout-Ms must be a positive number of milliseconds, got "
                f"{value.decode('latin-1')[:32]!r}"
            )
        return self.started + milliseconds / 1000

    @property
    def content_type(self) -> str | None:
        value = self.headers.get(b"content-type")
        return None if value is None else value.decode("latin-1")

    def held_body(self, budget: ByteBudget, decoder: Offloader) -> BodyReader:
        """A reader of the body whose bytes count against `budget` until its `with` block
        ends; a compressed body is decompressed on `decoder`'s threads."""
        return BodyReader(self, budget, decoder)

    async def until_answered(self, future: asyncio.Future) -> Any:
        """The result of `future`, cancelled (so dropped before compute if it has not
        started) when the client disconnects, which raises `ClientDisconnected`. The server's
        disconnect callback is used where it offers one; else a task waits on `receive()`."""
        departed = False

        def depart() -> None:
            nonlocal departed
            departed = True
            future.cancel()

        on_disconnect = self.scope.get("extensions", {}).get(DISCONNECT_EXTENSION)
        watch = None
        if on_disconnect is not None:
            on_disconnect(depart)
        else:
            watch = asyncio.get_running_loop().create_task(self._disconnect())
            watch.add_done_callback(lambda task: None if task.cancelled() else depart())
        try:
            return await future
        except asyncio.CancelledError:
            if departed:
                raise ClientDisconnected(
                    "client disconnected before its answer was ready"
                ) from None
            raise
        finally:
            if watch is not None:
                watch.cancel()

    async def _disconnect(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass

    async def send_json(
        self, status: int, content: Any, headers: dict[str, str] | None = None
    ) -> None:
        body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
        extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await self.send_body(status, body, JSON_CONTENT_TYPE, extra)

    async def send_body(
        self,
        status: int,
        body: bytes,
        content_type: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Answer with `body`; a successful answer is compressed as the request's
        Accept-Encoding asks (errors stay plain, for clients that read them raw)."""
        raw_headers = [(b"content-type", content_type), VARY_HEADER, *(headers or ())]
        if status == 200:
            coding = compression.response_coding(self.headers.get(b"accept-encoding"))
            if coding != compression.IDENTITY:
                body = compression.encode(coding, body)
                raw_headers.append((b"content-encoding", coding.encode()))
        raw_headers.append((b"content-length", str(len(body)).encode()))
        self.status = status
        await self.send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await self.send({"type": "http.response.body", "body": body})

    async def send_error(self, error: ServingError) -> None:
        status, body, headers = error_payload(error)
        await self.send_json(status, body, headers)  # a server drops it if the client left


class BodyReader:
    """Reads one request body within a size limit, a byte budget and a deadline."""

    __slots__ = ("budget", "decoder", "exchange", "reserved")

    def __init__(self, exchange: Exchange, budget: ByteBudget, decoder: Offloader) -> None:
        self.exchange = exchange
        self.budget = budget
        self.decoder = decoder
        self.reserved = 0

    def __enter__(self) -> BodyReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.budget.release(self.reserved)

    async def read(self, limit: int, deadline: float | None) -> bytes:
        """The whole body, decoded from its Content-Encoding: `PayloadTooLarge` past `limit`
        (sent or decoded), `ServerBusy` when the budget is spent (checked on the declared
        length before anything is read), `DeadlineExceeded` at `deadline`,
        `ClientDisconnected` if the client leaves, `UnsupportedMediaType` for an unknown
        coding (before the body is read)."""
        coding = compression.request_coding(self.exchange.headers.get(b"content-encoding"))
        body = await self._read(limit, deadline)
        if coding == compression.IDENTITY:
            return body
        # Off the event loop: a small body may inflate to `limit` bytes.
        inflate = functools.partial(compression.decode, coding, body, limit)
        decoded = await self.decoder.run(inflate, deadline)
        self._reserve(len(decoded))
        return decoded

    async def _read(self, limit: int, deadline: float | None) -> bytes:
        declared = self.exchange.headers.get(b"content-length", b"")
        if declared.isdigit():
            size = int(declared)
            if size > limit:
                raise PayloadTooLarge(
                    f"request body of {size} bytes exceeds the {limit}-byte limit"
                )
            self._reserve(size)
        if deadline is None:
            return await self._chunks(limit)
        try:
            return await asyncio.wait_for(self._chunks(limit), deadline - time.monotonic())
        except TimeoutError:
            raise DeadlineExceeded("deadline exceeded while reading the body") from None

    async def _chunks(self, limit: int) -> bytes:
        receive = self.exchange.receive
        message = await receive()
        body = message.get("body", b"")
        if not message.get("more_body", False) and message["type"] == "http.request":
            self._reserve(len(body) - self.reserved)
            return body
        chunks, size = [body], len(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
            self._reserve(size - self.reserved)
            chunks.append(chunk)
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("client disconnected while sending the body")
        return b"".join(chunks)

    def _reserve(self, size: int) -> None:
        if size > 0:
            self.budget.reserve(size)
            self.reserved += size

"""uvicorn's httptools protocol with connection limits and a draining mode.

What a client may hold, per connection (`server.http`):
- the request line and headers: at most `max_header_bytes` (431 and close as soon as the bytes
  before the end of the headers exceed it), complete within `header_timeout_s` of the request's
  first byte, or of the connection opening for its first request (408 and close);
- a started body: no pause between two chunks longer than `body_idle_timeout_s` (408 and close;
  the app, which already has the request, receives `http.disconnect`);
- an idle keep-alive connection: `keep_alive_timeout_s` (uvicorn's `timeout_keep_alive`),
  announced on every keep-alive response as `Keep-Alive: timeout=N`.

The timeouts share one timer per connection, armed only when a request spans several reads: a
deadline moves by a float store, and a timer that fires early re-arms for the new deadline.

Draining (after SIGTERM): every response carries `Connection: close`, and at shutdown an idle
connection is not closed under a client that may be sending a request on it; it is answered,
or closed by its header or keep-alive timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.config import HttpConfig


@dataclass
class ConnectionPolicy:
    """The limits every connection of one server enforces, and whether it is draining."""

    max_header_bytes: int
    header_timeout_s: float
    body_idle_timeout_s: float
    keep_alive_timeout_s: float
    draining: bool = False
    _headers_base: list[tuple[bytes, bytes]] | None = field(default=None, repr=False)
    _headers_keep_alive: list[tuple[bytes, bytes]] = field(default_factory=list, repr=False)

    @classmethod
    def from_config(cls, http: HttpConfig) -> ConnectionPolicy:
        return cls(
            max_header_bytes=http.max_header_bytes,
            header_timeout_s=http.header_timeout_s,
            body_idle_timeout_s=http.body_idle_timeout_s,
            keep_alive_timeout_s=http.keep_alive_timeout_s,
        )

    def keep_alive_headers(self, base: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """`base` (uvicorn's default headers, renewed each second) plus `Keep-Alive`."""
        if base is not self._headers_base:
            seconds = max(1, int(self.keep_alive_timeout_s))
            self._headers_keep_alive = [*base, (b"keep-alive", b"timeout=%d" % seconds)]
            self._headers_base = base
        return self._headers_keep_alive


# The ASGI scope extension through which an app learns, without a task of its own waiting on
# `receive()`, that its client left: `scope["extensions"][DISCONNECT_EXTENSION](callback)`.
DISCONNECT_EXTENSION = "blockserve.on_disconnect"


CONTINUE = b"HTTP/1.1 100 "


class CoalescingWriter:
    """Stands in for the transport in one response cycle: the response head waits for the
    first body write and both leave in one send (one syscall and, for a small answer, one TCP
    segment); later writes pass straight through. `flush` sends a head that came alone."""

    __slots__ = ("head", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.head: bytes | None = None

    def write(self, data: bytes) -> None:
        if self.head is None:
            if data.startswith(CONTINUE):  # the client waits for it before sending its body
                self.transport.write(data)
                return
            self.head = data
            return
        self.transport.write(self.head + data if self.head else data)
        self.head = b""

    def flush(self) -> None:
        if self.head:
            self.transport.write(self.head)
            self.head = b""

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """One HTTP/1.1 connection under a `ConnectionPolicy` (pass with `functools.partial`)."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        policy: ConnectionPolicy,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.policy = policy
        # Bytes the current request line and headers may still take; None once they are in.
        self._header_budget: int | None = policy.max_header_bytes
        self._in_body = False
        self._deadline: float | None = None  # loop time the current phase must end by
        self._phase_timeout_s = policy.header_timeout_s
        self._timer: asyncio.TimerHandle | None = None
        self._writer: CoalescingWriter | None = None
        self._on_disconnect: list[Callable[[], object]] = []

    # Connection events

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_timer(self._start_phase(self.policy.header_timeout_s))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            for callback in self._on_disconnect:
                callback()
        self._on_disconnect.clear()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        budget = self._header_budget
        if budget is not None:
            if len(data) > budget:
                self._receive_past_header_budget(data, budget)
                return
            self._header_budget = budget - len(data)
        elif self._in_body:
            self._deadline = self.loop.time() + self._phase_timeout_s
        super().data_received(data)
        if self._deadline is not None and self._timer is None:
            self._arm_timer(self._deadline)

    def _receive_past_header_budget(self, data: bytes, budget: int) -> None:
        """Feed what the headers may still take; 431 unless they end within it."""
        self._header_budget = 0
        if budget:
            super().data_received(data[:budget])
        if self.transport.is_closing():
            return
        if self._header_budget == 0:
            limit = self.policy.max_header_bytes
            self._reject(431, f"request line and headers exceed {limit} bytes")
            return
        self.data_received(data[budget:])

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._start_phase(self.policy.header_timeout_s)

    def on_headers_complete(self) -> None:
        self._header_budget = None
        super().on_headers_complete()
        self._in_body = True
        self._start_phase(self.policy.body_idle_timeout_s)
        cycle = self.cycle
        if cycle is None or cycle.scope is not self.scope:
            return  # an upgrade: not an HTTP request cycle
        self._writer = CoalescingWriter(self.transport)
        cycle.transport = self._writer  # type: ignore[assignment]
        self._on_disconnect.clear()
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[DISCONNECT_EXTENSION] = self._on_disconnect.append
        if self.policy.draining:
            cycle.keep_alive = False
        elif cycle.keep_alive:
            cycle.default_headers = self.policy.keep_alive_headers(cycle.default_headers)

    def on_response_complete(self) -> None:
        if self._writer is not None:
            self._writer.flush()
        self._on_disconnect.clear()
        super().on_response_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_body = False
        self._deadline = None
        self._header_budget = self.policy.max_header_bytes

    # Draining

    def retire(self) -> None:
        """Answer the request in progress with `Connection: close`, then close. A response
        already started went out without that header: its client may send another request,
        which gets it (new cycles are created closing while draining)."""
        if self.cycle is not None and not self.cycle.response_started:
            self.cycle.keep_alive = False

    def shutdown(self) -> None:
        """Called by uvicorn once the listener is closed. An idle connection stays open: its
        client may be sending a request right now, which is answered (`Connection: close`);
        the header or keep-alive timeout closes it otherwise."""
        self.retire()

    # Timeouts

    def _start_phase(self, timeout_s: float) -> float:
        """Start a phase that must end within `timeout_s`; return its deadline (loop time)."""
        self._phase_timeout_s = timeout_s
        self._deadline = self.loop.time() + timeout_s
        return self._deadline

    def _arm_timer(self, deadline: float) -> None:
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._deadline is None or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow.read_paused or self._answering_previous():  # the client is not late
            self._deadline = now + self._phase_timeout_s
        if now < self._deadline:
            self._arm_timer(self._deadline)
        elif self._in_body:
            self._body_timed_out()
        else:
            seconds = f"{self.policy.header_timeout_s:g}"
            self._reject(408, f"request line and headers not received within {seconds} s")

    def _answering_previous(self) -> bool:
        """Headers of a pipelined request trickle in while the app answers the one before."""
        return not self._in_body and self.cycle is not None and not self.cycle.response_complete

    def _body_timed_out(self) -> None:
        cycle = self.cycle
        if cycle.response_started:
            self.transport.close()  # the app answers already: it learns of the close
            return
        cycle.disconnected = True  # the app's receive() returns http.disconnect, send() no-ops
        cycle.message_event.set()
        seconds = f"{self.policy.body_idle_timeout_s:g}"
        self._reject(408, f"request body stalled: no data for {seconds} s")

    def _reject(self, status: int, message: str) -> None:
        """Answer `status` with a JSON error naming the problem, and close."""
        body = orjson.dumps({"error": message})
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.logger.info("%s: %d %s", self._peer(), status, message)
        self.transport.write(b"".join(head) + body)
        self.transport.close()
        self._deadline = None

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "client"

"""Blocking work (decoding, parsing) in a thread pool, with a bounded backlog and deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from service.errors import DeadlineExceeded, ServerBusy

T = TypeVar("T")


class Offloader:
    """Runs functions in `pool`; at most `max_backlog` may wait for a thread at once."""

    def __init__(self, pool: Executor, threads: int, max_backlog: int, retry_after_s: float):
        self.pool = pool
        self.capacity = threads + max_backlog
        self.submitted = 0  # running or waiting for a thread
        self._retry_after_s = retry_after_s

    async def run(self, work: Callable[[], T], deadline: float | None = None) -> T:
        """`work()` in a pool thread. `ServerBusy` when the backlog is full; at `deadline`
        (time.monotonic()) `DeadlineExceeded`, and work not yet started never starts."""
        if self.submitted >= self.capacity:
            raise ServerBusy(
                f"{self.submitted} requests are waiting for a decode thread", self._retry_after_s
            )
        future = asyncio.get_running_loop().run_in_executor(self.pool, work)
        self.submitted += 1
        future.add_done_callback(self._finished)
        if deadline is None:
            return await future
        try:
            return await asyncio.wait_for(future, deadline - time.monotonic())
        except TimeoutError:
            raise DeadlineExceeded(
                "deadline exceeded while waiting for or during decoding"
            ) from None

    async def run_unless_small(
        self, size: int, inline_max_bytes: int, work: Callable[[], T], deadline: float | None
    ) -> T:
        """`work()` on the event loop for an input of at most `inline_max_bytes` (a thread hop
        would cost more than the work), else `run(work, deadline)`."""
        if size <= inline_max_bytes:
            return work()
        return await self.run(work, deadline)

    def _finished(self, _: asyncio.Future) -> None:
        self.submitted -= 1

"""Dynamic batching of one model instance on asyncio.

Policy (documented in docs/serving.md):

* Requests enter a bounded queue counted in images (`max_queue`); a request that does not fit
  is refused at once with `QueueFull`.
* One worker task per instance. Whenever the runtime is free and the queue is not empty, it
  takes up to `max_batch_size` images in arrival order; a request's images may span batches,
  and the request is answered when all of them are done.
* It waits for more images only while it knows more are on their way (`more_coming()`: a
  request for this model was admitted and is still being read or decoded) and the batch is not
  full, and never longer than `max_delay_s` from the moment it became free. A lone request on
  an idle server never waits; under load, requests accumulate while the runtime is busy.
* Requests whose deadline passed or whose caller went away are dropped before compute if their
  batch has not started. An exception inside a batch fails that batch's requests only.
* Inference runs in a worker thread (`executor`); a batch of at most `inline_max_images`
  runs on the event loop itself instead (small batches of tiny models, where the thread hop
  costs more than the compute). Batches are copied into one preallocated buffer of
  `max_batch_size` images.
* `close()` stops accepting, finishes every queued request, then stops the worker.

The batcher knows nothing of configs, metrics or protocols: it reports what happens to a
`BatchObserver`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from service.errors import (
    DeadlineExceeded,
    InferenceFailed,
    InvalidInput,
    ModelNotReady,
    PayloadTooLarge,
    QueueFull,
    ServingError,
)
from service.runtimes.base import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchRun:
    """One batch the runtime ran: its images, the requests (parts of requests) in it, and
    the seconds spent gathering their rows into the batch, computing, and handing the output
    rows back."""

    size: int
    requests: int
    input_seconds: float
    compute_seconds: float
    output_seconds: float
    failed: bool


class BatchObserver(Protocol):
    """What a batcher reports; metrics and statistics subscribe to these events."""

    def queue_changed(self, depth: int) -> None:
        """Images waiting in the queue, after every change."""

    def batch_started(self, size: int, queue_waits: list[float]) -> None:
        """A batch of `size` images went to the runtime; `queue_waits` holds, per request
        starting in it, the seconds from enqueue to this moment."""

    def batch_finished(self, run: BatchRun) -> None:
        """The runtime returned (or raised: `run.failed`)."""


def nothing_coming() -> bool:
    """`more_coming` for a batcher that is never told of requests on their way."""
    return False


async def outputs_of(future: asyncio.Future[np.ndarray]) -> np.ndarray:
    """The submitted request's outputs; cancelling the waiter cancels the request (dropped
    before compute if its batch has not started)."""
    try:
        return await future
    finally:
        future.cancel()


class NullObserver:
    def queue_changed(self, depth: int) -> None:
        pass

    def batch_started(self, size: int, queue_waits: list[float]) -> None:
        pass

    def batch_finished(self, run: BatchRun) -> None:
        pass


@dataclass(eq=False)
class _Request:
    images: np.ndarray  # (N, *input_shape)
    future: asyncio.Future[np.ndarray]
    deadline: float | None  # time.monotonic()
    enqueued: float
    taken: int = 0  # images already placed in a batch
    finished: int = 0  # images whose outputs are written
    outputs: np.ndarray | None = None  # (N, *output_shape), allocated by the first batch
    expiry: asyncio.TimerHandle | None = None

    @property
    def remaining(self) -> int:
        return len(self.images) - self.taken


@dataclass(frozen=True)
class _Slice:
    request: _Request
    start: int  # first image of the request in this batch
    offset: int  # its row in the batch buffer
    count: int


@dataclass
class _Batch:
    slices: list[_Slice] = field(default_factory=list)
    size: int = 0


class Batcher:
    """Queues requests for one runtime and runs them in dynamically sized batches."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        name: str,
        input_shape: tuple[int, ...],
        max_batch_size: int,
        max_delay_s: float,
        max_queue: int,
        executor: Executor,
        observer: BatchObserver | None = None,
        inline_max_images: int = 0,
        retry_after_s: float = 1.0,
        more_coming: Callable[[], bool] = nothing_coming,
    ) -> None:
        self.name = name
        self.input_shape = tuple(input_shape)
        self.max_queue = max_queue
        self._runtime = runtime
        self._max_batch = max_batch_size
        self._max_delay_s = max_delay_s
        self._executor = executor
        self._inline_max_images = inline_max_images
        self._observer = observer or NullObserver()
        self._retry_after_s = retry_after_s
        self._more_coming = more_coming
        self._buffer = np.empty((max_batch_size, *self.input_shape), np.float32)
        self._queue: collections.deque[_Request] = collections.deque()
        self._queued = 0  # images not yet placed in a batch
        self._computing = 0  # images of the batch the runtime is running
        self._wakeup = asyncio.Event()
        self._closing = False
        self._worker: asyncio.Task[None] | None = None
        self._observer.queue_changed(0)

    @property
    def queued_images(self) -> int:
        return self._queued

    @property
    def pending_images(self) -> int:
        """Images queued or being computed: what a new request would wait behind."""
        return self._queued + self._computing

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(
            self._serve(), name=f"batcher:{self.name}"
        )

    def poke(self) -> None:
        """Re-evaluate waiting now (e.g. an announced request will not come after all)."""
        self._wakeup.set()

    def stop_accepting(self) -> None:
        """Refuse new requests from now on; queued ones are still answered."""
        self._closing = True
        self._wakeup.set()

    async def close(self) -> None:
        """Stop accepting, finish every queued request, stop the worker."""
        self.stop_accepting()
        if self._worker is not None:
            await self._worker

    def submit(self, images: np.ndarray, deadline: float | None = None) -> asyncio.Future:
        """Queue `images` (N, *input_shape); the future gets the runtime's outputs (N, ...).

        Cancelling the future before its batch starts drops the request. At `deadline`
        (time.monotonic()) the future fails with `DeadlineExceeded`."""
        count = len(images)
        if self._closing:
            raise ModelNotReady(self.name, "SHUTTING_DOWN", "the server is shutting down")
        if count == 0:
            raise InvalidInput("the request holds no images")
        if count > self.max_queue:
            raise PayloadTooLarge(
                f"the request holds {count} images, more than model {self.name!r} "
                f"can queue (max_queue {self.max_queue})"
            )
        if self._queued + count > self.max_queue:
            raise QueueFull(self.name, self._queued, self.max_queue, self._retry_after_s)
        now = time.monotonic()
        if deadline is not None and deadline <= now:
            raise DeadlineExceeded(f"the deadline passed before model {self.name!r} queued it")
        loop = asyncio.get_running_loop()
        request = _Request(images, loop.create_future(), deadline, now)
        if deadline is not None:
            request.expiry = loop.call_at(
                loop.time() + (deadline - now), self._expire, request, now
            )
        request.future.add_done_callback(lambda _: self._settled(request))
        self._queue.append(request)
        self._queued += count
        self._observer.queue_changed(self._queued)
        self._wakeup.set()
        return request.future

    async def infer(self, images: np.ndarray, deadline: float | None = None) -> np.ndarray:
        """`submit` and wait; the request is dropped if the caller is cancelled."""
        return await outputs_of(self.submit(images, deadline))

    def _expire(self, request: _Request, enqueued: float) -> None:
        if not request.future.done():
            waited_ms = (time.monotonic() - enqueued) * 1000
            request.future.set_exception(
                DeadlineExceeded(f"deadline exceeded after {waited_ms:.0f} ms in {self.name!r}")
            )

    def _settled(self, request: _Request) -> None:
        """Answered, failed, expired or cancelled: stop its timer and unqueue what is left."""
        if request.expiry is not None:
            request.expiry.cancel()
        if request.remaining and request.taken == 0 and request in self._queue:
            self._queue.remove(request)
            self._queued -= request.remaining
            request.taken = len(request.images)
            self._observer.queue_changed(self._queued)

    async def _serve(self) -> None:
        try:
            while (batch := await self._next_batch()) is not None:
                await self._run(batch)
        finally:  # only a cancelled worker leaves requests behind: answer them too
            stopped = ModelNotReady(self.name, "STOPPED", "the batcher stopped")
            while self._queue:
                request = self._queue.popleft()
                if not request.future.done():
                    request.future.set_exception(stopped)
            self._queued = 0
            self._observer.queue_changed(0)

    async def _next_batch(self) -> _Batch | None:
        while True:
            while not self._queue:
                if self._closing:
                    return None
                await self._wait()
            await self._gather_more()
            batch = self._take()
            if batch.size:
                return batch

    async def _gather_more(self) -> None:
        give_up = time.monotonic() + self._max_delay_s
        while self._queued < self._max_batch and self._more_coming() and not self._closing:
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                return
            await self._wait(remaining)

    async def _wait(self, timeout: float | None = None) -> None:
        self._wakeup.clear()
        if timeout is None:
            await self._wakeup.wait()
            return
        timer = asyncio.get_running_loop().call_later(timeout, self._wakeup.set)
        try:
            await self._wakeup.wait()
        finally:
            timer.cancel()

    def _take(self) -> _Batch:
        """Move up to `max_batch_size` images of live requests into a batch, in queue order."""
        batch = _Batch()
        waits: list[float] = []
        now = time.monotonic()
        while self._queue and batch.size < self._max_batch:
            request = self._queue[0]
            if request.future.done():  # expired or cancelled while a batch was running
                self._queue.popleft()
                self._queued -= request.remaining
                continue
            if request.taken == 0:
                waits.append(now - request.enqueued)
            count = min(request.remaining, self._max_batch - batch.size)
            batch.slices.append(_Slice(request, request.taken, batch.size, count))
            request.taken += count
            self._queued -= count
            batch.size += count
            if not request.remaining:
                self._queue.popleft()
        self._observer.queue_changed(self._queued)
        if batch.size:
            self._observer.batch_started(batch.size, waits)
        return batch

    async def _run(self, batch: _Batch) -> None:
        gathering = time.monotonic()
        inputs = self._buffer[: batch.size]  # (B, *input_shape)
        for part in batch.slices:
            rows = part.request.images[part.start : part.start + part.count]
            inputs[part.offset : part.offset + part.count] = rows
        started = time.monotonic()
        finished = delivered = started
        self._computing = batch.size
        failed = True
        try:
            if batch.size <= self._inline_max_images:
                outputs = self._runtime.run(inputs)
                finished = time.monotonic()
                await asyncio.sleep(0)  # let the loop serve others before the next batch
            else:
                outputs = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._runtime.run, inputs
                )
                finished = time.monotonic()
            if len(outputs) != batch.size:
                raise RuntimeError(f"runtime returned {len(outputs)} rows for {batch.size} inputs")
            self._deliver(batch, outputs)
            delivered = time.monotonic()
            failed = False
        except Exception as error:
            log.exception("model %s: batch of %d images failed", self.name, batch.size)
            self._fail(batch, InferenceFailed(self.name, error))
        except asyncio.CancelledError:
            self._fail(batch, ModelNotReady(self.name, "STOPPED", "the batcher was cancelled"))
            raise
        finally:
            self._computing = 0
            if failed:
                finished = delivered = time.monotonic()
            self._observer.batch_finished(
                BatchRun(
                    size=batch.size,
                    requests=len(batch.slices),
                    input_seconds=started - gathering,
                    compute_seconds=finished - started,
                    output_seconds=delivered - finished,
                    failed=failed,
                )
            )

    def _deliver(self, batch: _Batch, outputs: np.ndarray) -> None:
        for part in batch.slices:
            request = part.request
            if request.future.done():
                continue
            if request.outputs is None:
                request.outputs = np.empty((len(request.images), *outputs.shape[1:]), outputs.dtype)
            rows = outputs[part.offset : part.offset + part.count]
            request.outputs[part.start : part.start + part.count] = rows
            request.finished += part.count
            if request.finished == len(request.images):
                request.future.set_result(request.outputs)

    def _fail(self, batch: _Batch, error: ServingError) -> None:
        for part in batch.slices:
            request = part.request
            if not request.future.done():
                request.future.set_exception(error)
            if request.remaining and request in self._queue:  # its other images were queued
                self._queue.remove(request)
                self._queued -= request.remaining
                request.taken = len(request.images)
        self._observer.queue_changed(self._queued)

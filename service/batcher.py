"""Dynamic batching of one model instance on asyncio.

Policy (documented in docs/serving.md):

* Requests enter a bounded queue counted in images (`max_queue`); a request that does not fit
  is refused at once with `QueueFull`.
* One worker task per instance. Whenever the runtime is free and the queue is not empty, it
  takes up to `max_batch_size` images in arrival order; a request's images may span batches,
  and the request is answered when all of them are done.
* It waits for more images only while it knows more are on their way (`more_coming()`: a
  request for this model is still being decoded) and the batch is not full, and never longer
  than `max_delay_ms` from the moment it became free. A lone request on an idle server never
  waits; under load, requests accumulate while the runtime is busy.
* Requests whose deadline passed or whose caller went away are dropped before compute if their
  batch has not started. An exception inside a batch fails that batch's requests only.
* Inference runs in a worker thread (`executor`); batches are copied into one preallocated
  buffer of `max_batch_size` images.
* `close()` stops accepting, finishes every queued request, then stops the worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from service.config import BatchingConfig
from service.errors import (
    DeadlineExceeded,
    InferenceFailed,
    InvalidInput,
    ModelNotReady,
    PayloadTooLarge,
    QueueFull,
    ServingError,
)
from service.metrics import Metrics

log = logging.getLogger(__name__)


class BatchRunner(Protocol):
    """What the batcher needs from a runtime (`service.runtimes.Runtime` satisfies it)."""

    def run(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(eq=False)
class _Request:
    images: np.ndarray  # (N, *input_shape)
    future: asyncio.Future[np.ndarray]
    deadline: float | None  # time.monotonic()
    enqueued: float
    taken: int = 0  # images already placed in a batch
    finished: int = 0  # images whose outputs are written
    outputs: np.ndarray | None = None  # (N, *output_shape), allocated by the first batch

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
        runtime: BatchRunner,
        *,
        model: str,
        input_shape: tuple[int, ...],
        batching: BatchingConfig,
        executor: Executor,
        metrics: Metrics,
        instance: int = 0,
        retry_after_s: float = 1.0,
        more_coming: Callable[[], bool] = lambda: False,
    ) -> None:
        self.model = model
        self.instance = instance
        self.input_shape = tuple(input_shape)
        self._runtime = runtime
        self._max_batch = batching.max_batch_size
        self._max_delay_s = batching.max_delay_ms / 1000
        self._max_queue = batching.max_queue
        self._executor = executor
        self._retry_after_s = retry_after_s
        self._more_coming = more_coming
        self._buffer = np.empty((self._max_batch, *self.input_shape), np.float32)
        self._queue: collections.deque[_Request] = collections.deque()
        self._queued = 0  # images not yet placed in a batch
        self._computing = 0  # images of the batch the runtime is running
        self._wakeup = asyncio.Event()
        self._closing = False
        self._worker: asyncio.Task[None] | None = None
        # The per-model metric children, looked up once instead of per request and batch.
        self._depth = metrics.queue_depth.labels(model=model, instance=str(instance))
        self._depth.set(0)
        self._queue_seconds = metrics.queue_seconds.labels(model=model)
        self._batch_size = metrics.batch_size.labels(model=model)
        self._compute_seconds = metrics.compute_seconds.labels(model=model)

    @property
    def queued_images(self) -> int:
        return self._queued

    @property
    def pending_images(self) -> int:
        """Images queued or being computed: what a new request would wait behind."""
        return self._queued + self._computing

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(
            self._serve(), name=f"batcher:{self.model}:{self.instance}"
        )

    def poke(self) -> None:
        """Re-evaluate waiting now (e.g. an announced request will not come after all)."""
        self._wakeup.set()

    async def close(self) -> None:
        """Stop accepting, finish every queued request, stop the worker."""
        self._closing = True
        self._wakeup.set()
        if self._worker is not None:
            await self._worker

    async def infer(self, images: np.ndarray, deadline: float | None = None) -> np.ndarray:
        """Queue `images` (N, *input_shape) and return the runtime's outputs (N, ...)."""
        count = len(images)
        if self._closing:
            raise ModelNotReady(self.model, "SHUTTING_DOWN", "the server is shutting down")
        if count == 0:
            raise InvalidInput("the request holds no images")
        if count > self._max_queue:
            raise PayloadTooLarge(
                f"the request holds {count} images, more than model {self.model!r} "
                f"can queue (max_queue {self._max_queue})"
            )
        if self._queued + count > self._max_queue:
            raise QueueFull(self.model, self._queued, self._max_queue, self._retry_after_s)
        now = time.monotonic()
        if deadline is not None and deadline <= now:
            raise DeadlineExceeded(f"the deadline passed before model {self.model!r} queued it")
        request = _Request(images, asyncio.get_running_loop().create_future(), deadline, now)
        self._queue.append(request)
        self._queued += count
        self._depth.set(self._queued)
        self._wakeup.set()
        try:
            if deadline is None:
                return await request.future
            return await asyncio.wait_for(request.future, deadline - now)
        except TimeoutError:
            waited_ms = (time.monotonic() - now) * 1000
            raise DeadlineExceeded(
                f"deadline exceeded after {waited_ms:.0f} ms in model {self.model!r}"
            ) from None
        finally:
            if not request.future.done():  # the caller went away
                request.future.cancel()
            self._discard(request)

    def _discard(self, request: _Request) -> None:
        if request.remaining and request in self._queue:
            self._queue.remove(request)
            self._queued -= request.remaining
            self._depth.set(self._queued)

    async def _serve(self) -> None:
        try:
            while (batch := await self._next_batch()) is not None:
                await self._run(batch)
        finally:  # only a cancelled worker leaves requests behind: answer them too
            stopped = ModelNotReady(self.model, "STOPPED", "the batcher stopped")
            while self._queue:
                request = self._queue.popleft()
                if not request.future.done():
                    request.future.set_exception(stopped)
            self._queued = 0
            self._depth.set(0)

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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout)

    def _take(self) -> _Batch:
        """Move up to `max_batch_size` images of live requests into a batch, in queue order."""
        batch = _Batch()
        now = time.monotonic()
        while self._queue and batch.size < self._max_batch:
            request = self._queue[0]
            if request.future.done() or (request.deadline is not None and request.deadline <= now):
                self._queue.popleft()
                self._queued -= request.remaining
                if not request.future.done():
                    request.future.set_exception(
                        DeadlineExceeded(f"deadline exceeded in the queue of {self.model!r}")
                    )
                continue
            if request.taken == 0:
                self._queue_seconds.observe(now - request.enqueued)
            count = min(request.remaining, self._max_batch - batch.size)
            batch.slices.append(_Slice(request, request.taken, batch.size, count))
            request.taken += count
            self._queued -= count
            batch.size += count
            if not request.remaining:
                self._queue.popleft()
        self._depth.set(self._queued)
        return batch

    async def _run(self, batch: _Batch) -> None:
        inputs = self._buffer[: batch.size]  # (B, *input_shape)
        for part in batch.slices:
            rows = part.request.images[part.start : part.start + part.count]
            inputs[part.offset : part.offset + part.count] = rows
        self._batch_size.observe(batch.size)
        started = time.monotonic()
        self._computing = batch.size
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._runtime.run, inputs
            )
            self._compute_seconds.observe(time.monotonic() - started)
            if len(outputs) != batch.size:
                raise RuntimeError(f"runtime returned {len(outputs)} rows for {batch.size} inputs")
            self._deliver(batch, outputs)
        except Exception as error:
            log.exception("model %s: batch of %d images failed", self.model, batch.size)
            self._fail(batch, InferenceFailed(self.model, error))
        except asyncio.CancelledError:
            self._fail(batch, ModelNotReady(self.model, "STOPPED", "the batcher was cancelled"))
            raise
        finally:
            self._computing = 0

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
            if not part.request.future.done():
                part.request.future.set_exception(error)
            self._discard(part.request)
        self._depth.set(self._queued)

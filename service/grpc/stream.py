"""Answering a stream of requests concurrently, with a bounded window.

Each request is answered as soon as its answer is ready (so that the requests of one stream can
share batches), in whatever order they finish. At most `window` requests are read but not yet
answered to the client: past that the stream stops reading, and gRPC flow control holds the
client back, so a client that sends without reading cannot fill the server's memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable


async def answer_concurrently(
    requests: AsyncIterable[bytes], answer: Callable[[bytes], Awaitable[bytes]], window: int
) -> AsyncIterator[bytes]:
    """`answer(request)` of every request, as each is ready. Ends once the client has closed
    its side and every answer is sent; closed early (the call ends), cancels what is in flight."""
    answers: asyncio.Queue[bytes | None] = asyncio.Queue()
    slots = asyncio.Semaphore(window)
    reader = asyncio.create_task(_read(requests, answer, answers, slots))
    try:
        while (ready := await answers.get()) is not None:
            yield ready
            slots.release()
        await reader  # raises what ended the reading, if anything did
    finally:
        reader.cancel()


async def _read(
    requests: AsyncIterable[bytes],
    answer: Callable[[bytes], Awaitable[bytes]],
    answers: asyncio.Queue[bytes | None],
    slots: asyncio.Semaphore,
) -> None:
    """Starts answering each request as it arrives, into `answers`; queues None at the end."""
    in_flight: set[asyncio.Task[None]] = set()
    pending = aiter(requests)

    async def answer_into_queue(request: bytes) -> None:
        answers.put_nowait(await answer(request))

    try:
        while True:
            await slots.acquire()
            try:
                request = await anext(pending)
            except StopAsyncIteration:
                break
            task = asyncio.create_task(answer_into_queue(request))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(set(in_flight))
    finally:
        for task in in_flight:
            task.cancel()
        answers.put_nowait(None)

"""`answer_concurrently`: the engine of ModelStreamInfer, on plain async iterators."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from grpc_harness import wait_for

from service.grpc.stream import answer_concurrently


class GatedAnswers:
    """Answers request b"k" with b"answer k" once gate k is opened."""

    def __init__(self, count: int) -> None:
        self.gates = [asyncio.Event() for _ in range(count)]
        self.started: list[int] = []
        self.cancelled: list[int] = []

    async def answer(self, request: bytes) -> bytes:
        index = request[0]
        self.started.append(index)
        try:
            await self.gates[index].wait()
        except asyncio.CancelledError:
            self.cancelled.append(index)
            raise
        return b"answer %d" % index


async def requests(count: int, read: list[int]) -> AsyncIterator[bytes]:
    for index in range(count):
        read.append(index)
        yield bytes([index])


async def spin_event_loop() -> None:
    """Let every ready task run a few steps (no waiting on time)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_answers_come_in_the_order_they_finish() -> None:
    answers = GatedAnswers(3)
    stream = answer_concurrently(requests(3, []), answers.answer, window=8)
    first = asyncio.ensure_future(anext(stream))
    await wait_for(lambda: len(answers.started) == 3, "all three requests to start")
    answers.gates[2].set()
    assert await first == b"answer 2"
    answers.gates[0].set()
    answers.gates[1].set()
    assert sorted([answer async for answer in stream]) == [b"answer 0", b"answer 1"]


async def test_reading_stops_while_the_window_is_full() -> None:
    read: list[int] = []
    answers = GatedAnswers(5)
    stream = answer_concurrently(requests(5, read), answers.answer, window=2)
    first = asyncio.ensure_future(anext(stream))
    await wait_for(lambda: len(answers.started) == 2, "two requests to start")
    await spin_event_loop()
    assert read == [0, 1]
    for gate in answers.gates:
        gate.set()
    first_answer = await first
    rest = [answer async for answer in stream]
    assert sorted([first_answer, *rest]) == [b"answer %d" % index for index in range(5)]
    assert read == [0, 1, 2, 3, 4]


async def test_closing_the_stream_cancels_the_requests_in_flight() -> None:
    answers = GatedAnswers(2)
    answers.gates[0].set()
    stream = answer_concurrently(requests(2, []), answers.answer, window=8)
    assert await anext(stream) == b"answer 0"
    await wait_for(lambda: answers.started == [0, 1], "the second request to start")
    await stream.aclose()
    await wait_for(lambda: answers.cancelled == [1], "the second request to be cancelled")

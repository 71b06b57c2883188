"""The dynamic batcher: dispatch policy, spanning, overload, deadlines, failures, draining."""

from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from service_fakes import FakeRuntime, batching, images, sample_value

from service.batcher import Batcher
from service.errors import (
    DeadlineExceeded,
    InferenceFailed,
    ModelNotReady,
    PayloadTooLarge,
    QueueFull,
    ServingError,
)

SHAPE = (1, 2, 2)
PIXELS = 4  # output column 0 = sum of an image's pixels = PIXELS * its value
AN_HOUR_MS = 3_600_000  # a max_delay_ms no test could wait out


@pytest.fixture
def executor():
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield pool


@pytest.fixture
def make_batcher(metrics, executor):
    runtimes: list[FakeRuntime] = []

    def make(runtime: FakeRuntime, **kwargs) -> Batcher:
        more_coming = kwargs.pop("more_coming", lambda: False)
        config = batching(**kwargs)
        batcher = Batcher(
            runtime,
            name="m",
            input_shape=SHAPE,
            max_batch_size=config.max_batch_size,
            max_delay_s=config.max_delay_ms / 1000,
            max_queue=config.max_queue,
            executor=executor,
            observer=metrics.batch_observer("m", "1", 0),
            more_coming=more_coming,
        )
        batcher.start()
        runtimes.append(runtime)
        return batcher

    yield make
    for runtime in runtimes:  # a test that failed early must not leave a worker blocked
        runtime.gate.set()


async def started(runtime: FakeRuntime, count: int = 1) -> None:
    await asyncio.to_thread(runtime.wait_started, count)


async def until(condition, timeout: float = 10) -> None:
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            raise TimeoutError("condition never became true")
        await asyncio.sleep(0.005)


async def test_lone_request_on_idle_batcher_is_dispatched_without_waiting_max_delay(
    make_batcher, metrics
):
    runtime = FakeRuntime()
    batcher = make_batcher(runtime, max_delay_ms=AN_HOUR_MS)  # an hour: waiting would hang

    outputs = await batcher.infer(images(2.0), deadline=None)

    assert outputs.tolist() == [[2.0 * PIXELS, 1.0]]
    assert runtime.batch_sizes == [1]
    assert sample_value(metrics, "blockserve_batch_size_count", {"model": "m", "version": "1"}) == 1
    queued = sample_value(metrics, "blockserve_queue_seconds_sum", {"model": "m", "version": "1"})
    assert queued < 1.0  # far below max_delay_ms: it never waited for company


async def test_requests_accumulate_while_the_runtime_is_busy_and_run_as_one_batch(make_batcher):
    runtime = FakeRuntime(blocked=True)
    batcher = make_batcher(runtime, max_batch_size=8)
    first = asyncio.create_task(batcher.infer(images(1.0), None))
    await started(runtime)
    later = [asyncio.create_task(batcher.infer(images(float(v)), None)) for v in range(2, 7)]
    await until(lambda: batcher.queued_images == 5)

    runtime.gate.set()
    results = await asyncio.gather(first, *later)

    assert runtime.batch_sizes == [1, 5]
    assert [r[0, 0] for r in results] == [PIXELS * v for v in range(1, 7)]
    assert [r[0, 1] for r in results] == [1, 5, 5, 5, 5, 5]


async def test_a_request_with_more_images_than_max_batch_size_spans_batches(make_batcher):
    runtime = FakeRuntime()
    batcher = make_batcher(runtime, max_batch_size=4)
    values = [float(v) for v in range(10)]

    outputs = await batcher.infer(images(*values), None)

    assert runtime.batch_sizes == [4, 4, 2]
    assert outputs[:, 0].tolist() == [PIXELS * v for v in values]


async def test_images_of_several_requests_share_and_split_batches_in_arrival_order(make_batcher):
    runtime = FakeRuntime(blocked=True)
    batcher = make_batcher(runtime, max_batch_size=4)
    head = asyncio.create_task(batcher.infer(images(0.0), None))
    await started(runtime)
    a = asyncio.create_task(batcher.infer(images(1, 2, 3), None))
    b = asyncio.create_task(batcher.infer(images(4, 5, 6), None))
    await until(lambda: batcher.queued_images == 6)

    runtime.gate.set()
    await head
    out_a, out_b = await a, await b

    assert runtime.batch_sizes == [1, 4, 2]
    assert out_a[:, 0].tolist() == [4.0, 8.0, 12.0]
    assert out_b[:, 0].tolist() == [16.0, 20.0, 24.0]


async def test_waits_for_announced_requests_until_the_batch_is_full(make_batcher):
    runtime = FakeRuntime()
    batcher = make_batcher(
        runtime, max_batch_size=3, max_delay_ms=AN_HOUR_MS, more_coming=lambda: True
    )

    results = await asyncio.gather(*(batcher.infer(images(float(v)), None) for v in (1, 2, 3)))

    assert runtime.batch_sizes == [3]
    assert [r[0, 1] for r in results] == [3, 3, 3]


async def test_stops_waiting_once_announced_requests_are_withdrawn(make_batcher):
    runtime = FakeRuntime()
    announced = {"count": 1}
    asked = asyncio.Event()

    def more_coming() -> bool:
        asked.set()
        return announced["count"] > 0

    batcher = make_batcher(
        runtime, max_batch_size=4, max_delay_ms=AN_HOUR_MS, more_coming=more_coming
    )
    request = asyncio.create_task(batcher.infer(images(1.0), None))
    await asyncio.wait_for(asked.wait(), timeout=10)
    asked.clear()
    batcher.poke()  # still announced: the batcher asks again instead of dispatching
    await asyncio.wait_for(asked.wait(), timeout=10)
    assert not request.done()  # waiting for the announced request
    assert runtime.seen == []

    announced["count"] = 0
    batcher.poke()

    assert (await request)[0, 1] == 1
    assert runtime.batch_sizes == [1]


async def test_partial_batch_waits_at_most_max_delay(make_batcher):
    runtime = FakeRuntime()
    batcher = make_batcher(runtime, max_batch_size=4, max_delay_ms=20, more_coming=lambda: True)

    outputs = await batcher.infer(images(1.0), None)

    assert outputs[0, 1] == 1
    assert runtime.batch_sizes == [1]


async def test_full_queue_refuses_with_queue_full_and_answers_every_accepted_request(
    make_batcher,
):
    runtime = FakeRuntime(blocked=True)
    batcher = make_batcher(runtime, max_batch_size=2, max_queue=4)
    running = asyncio.create_task(batcher.infer(images(1.0), None))
    await started(runtime)
    accepted = [asyncio.create_task(batcher.infer(images(2.0, 3.0), None)) for _ in range(2)]
    await until(lambda: batcher.queued_images == 4)

    with pytest.raises(QueueFull) as refused:
        await batcher.infer(images(9.0), None)
    assert refused.value.retry_after_s == 1.0
    assert "max_queue 4" in str(refused.value)

    runtime.gate.set()
    results = await asyncio.gather(running, *accepted)
    assert [r[:, 0].tolist() for r in results] == [[4.0], [8.0, 12.0], [8.0, 12.0]]


async def test_request_larger_than_the_queue_is_refused_as_too_large(make_batcher):
    batcher = make_batcher(FakeRuntime(), max_queue=3)
    with pytest.raises(PayloadTooLarge, match="4 images"):
        await batcher.infer(images(1, 2, 3, 4), None)


async def test_expired_request_is_answered_and_dropped_before_compute(make_batcher):
    runtime = FakeRuntime(blocked=True)
    batcher = make_batcher(runtime)
    running = asyncio.create_task(batcher.infer(images(1.0), None))
    await started(runtime)

    with pytest.raises(DeadlineExceeded):
        await batcher.infer(images(7.0), deadline=time.monotonic() + 0.05)
    assert batcher.queued_images == 0

    runtime.gate.set()
    await running
    await batcher.infer(images(2.0), None)
    seen_values = {float(batch.flat[0]) for batch in runtime.seen}
    assert 7.0 not in seen_values


async def test_deadline_already_passed_is_refused_without_queueing(make_batcher):
    runtime = FakeRuntime()
    batcher = make_batcher(runtime)
    with pytest.raises(DeadlineExceeded):
        await batcher.infer(images(1.0), deadline=time.monotonic() - 1)
    assert runtime.seen == []


async def test_cancelled_caller_is_dropped_before_compute(make_batcher):
    runtime = FakeRuntime(blocked=True)
    batcher = make_batcher(runtime)
    running = asyncio.create_task(batcher.infer(images(1.0), None))
    await started(runtime)
    gone = asyncio.create_task(batcher.infer(images(5.0), None))
    await until(lambda: batcher.queued_images == 1)

    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert batcher.queued_images == 0
    runtime.gate.set()
    await running
    await batcher.infer(images(2.0), None)

    assert all(5.0 not in batch for batch in runtime.seen)


async def test_failing_batch_fails_only_its_requests_and_the_batcher_keeps_serving(make_batcher):
    runtime = FakeRuntime(blocked=True)
    batcher = make_batcher(runtime, max_batch_size=2)
    head = asyncio.create_task(batcher.infer(images(1.0), None))
    await started(runtime)
    doomed = asyncio.create_task(batcher.infer(images(FakeRuntime.FAIL, 3.0), None))
    healthy = asyncio.create_task(batcher.infer(images(4.0), None))
    await until(lambda: batcher.queued_images == 3)

    runtime.gate.set()
    await head
    with pytest.raises(InferenceFailed) as failure:
        await doomed
    assert failure.value.message == "inference failed in model 'm' (see the server log)"
    assert repr(failure.value.cause) == "ValueError('injected failure')"
    assert (await healthy)[0, 0] == 16.0
    assert runtime.batch_sizes == [1, 2, 1]


async def test_close_stops_accepting_and_finishes_every_queued_request(make_batcher):
    runtime = FakeRuntime(blocked=True)
    batcher = make_batcher(runtime, max_batch_size=2)
    queued = [asyncio.create_task(batcher.infer(images(float(v)), None)) for v in range(5)]
    await started(runtime)
    closing = asyncio.create_task(batcher.close())
    await asyncio.sleep(0)

    with pytest.raises(ModelNotReady, match="shutting down"):
        await batcher.infer(images(1.0), None)
    runtime.gate.set()
    await closing

    assert [r[0, 0] for r in await asyncio.gather(*queued)] == [PIXELS * v for v in range(5)]
    assert batcher._worker.done()


async def test_every_accepted_request_gets_exactly_one_answer_under_chaos(make_batcher):
    """Many concurrent requests, random sizes, deadlines, cancellations and failing batches."""
    rng = random.Random(7)
    runtime = FakeRuntime()
    batcher = make_batcher(runtime, max_batch_size=8, max_queue=48, max_delay_ms=1)
    answers: dict[int, list[str]] = {}

    async def client(index: int) -> None:
        count = rng.randint(1, 6)
        values = [float(index * 10 + i) for i in range(count)]
        if rng.random() < 0.1:
            values[0] = FakeRuntime.FAIL
        deadline = time.monotonic() + rng.choice([0.001, 0.02, 5.0, 60.0])
        await asyncio.sleep(rng.random() * 0.05)
        try:
            outputs = await batcher.infer(images(*values), deadline)
        except QueueFull:
            return  # refused, never accepted
        except ServingError as error:
            answers.setdefault(index, []).append(type(error).__name__)
            return
        assert outputs[:, 0].tolist() == [PIXELS * v for v in values]
        answers.setdefault(index, []).append("ok")

    clients = [asyncio.create_task(client(i)) for i in range(200)]
    for task in clients[::17]:
        task.cancel()
    outcomes = await asyncio.gather(*clients, return_exceptions=True)

    cancelled = {i for i, o in enumerate(outcomes) if isinstance(o, asyncio.CancelledError)}
    assert not [o for o in outcomes if isinstance(o, Exception)]
    assert all(len(kinds) == 1 for kinds in answers.values())
    assert cancelled.isdisjoint(answers)
    kinds = {kind for (kind,) in answers.values()}
    assert {"ok", "InferenceFailed"} <= kinds
    assert batcher.queued_images == 0
    assert (await batcher.infer(images(1.0), None))[0, 0] == PIXELS


async def test_a_cancelled_worker_still_answers_every_queued_request(make_batcher):
    runtime = FakeRuntime(blocked=True)
    batcher = make_batcher(runtime)
    running = asyncio.create_task(batcher.infer(images(1.0), None))
    await started(runtime)
    waiting = asyncio.create_task(batcher.infer(images(2.0), None))
    await until(lambda: batcher.queued_images == 1)

    batcher._worker.cancel()
    outcomes = await asyncio.gather(running, waiting, return_exceptions=True)

    assert [type(o) for o in outcomes] == [ModelNotReady, ModelNotReady]
    assert batcher.queued_images == 0

"""Triton's model statistics, counted from the batcher's and the requests' events."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from service_fakes import FakeRuntime, fake_loader, images, in_process, png_bytes, repository_config

from service.batcher import Batcher, BatchRun
from service.metrics import Metrics
from service.statistics import ModelStatistics

PNG = {"content-type": "image/png"}


def run(size: int, requests: int, seconds: tuple[float, float, float], failed=False) -> BatchRun:
    return BatchRun(size, requests, *seconds, failed=failed)


def test_batches_count_inferences_executions_and_per_request_compute_time():
    stats = ModelStatistics()

    stats.batch_started([0.001, 0.003])
    stats.batch_finished(run(5, 2, (0.000_1, 0.010, 0.000_2)))
    stats.batch_started([0.002])
    stats.batch_finished(run(1, 1, (0.000_1, 0.004, 0.000_1)))

    report = stats.as_json("m", "1")
    assert report["inference_count"] == 6 and report["execution_count"] == 2
    inference = report["inference_stats"]
    assert inference["queue"] == {"count": 3, "ns": 6_000_000}
    # every request part in a batch is charged the batch's time, as Triton does
    assert inference["compute_infer"] == {"count": 3, "ns": 2 * 10_000_000 + 4_000_000}
    assert inference["compute_input"] == {"count": 3, "ns": 2 * 100_000 + 100_000}
    assert inference["compute_output"] == {"count": 3, "ns": 2 * 200_000 + 100_000}
    assert [entry["batch_size"] for entry in report["batch_stats"]] == [1, 5]
    assert report["batch_stats"][1]["compute_infer"] == {"count": 1, "ns": 10_000_000}
    assert report["last_inference"] > 0


def test_a_failed_batch_counts_no_inference():
    stats = ModelStatistics()

    stats.batch_finished(run(4, 1, (0.0, 0.001, 0.0), failed=True))

    report = stats.as_json("m", "1")
    assert report["inference_count"] == 0 and report["execution_count"] == 0
    assert report["batch_stats"] == []


def test_answered_requests_count_as_success_or_fail_by_protocol_status():
    metrics = Metrics()

    metrics.record_request("m", "1", 200, "rest", 0.002)
    metrics.record_request("m", "1", "OK", "grpc", 0.001)
    metrics.record_request("m", "1", 503, "rest", 0.004)
    metrics.record_request("m", "1", "INVALID_ARGUMENT", "grpc", 0.001)
    metrics.record_request("", "", 404, "rest", 0.001)  # named no served model: no statistics

    inference = metrics.statistics.of("m", "1").as_json("m", "1")["inference_stats"]
    assert inference["success"] == {"count": 2, "ns": 3_000_000}
    assert inference["fail"] == {"count": 2, "ns": 5_000_000}
    assert metrics.statistics.report([]) == {"model_stats": []}


async def test_a_batcher_feeds_the_statistics_of_its_model():
    metrics = Metrics()
    runtime = FakeRuntime()
    with ThreadPoolExecutor(max_workers=1) as executor:
        batcher = Batcher(
            runtime,
            name="m",
            input_shape=(1, 2, 2),
            max_batch_size=4,
            max_delay_s=0,
            max_queue=64,
            executor=executor,
            observer=metrics.batch_observer("m", "1", 0),
        )
        batcher.start()
        await batcher.infer(images(*range(6)))  # spans two batches: 4 + 2
        await batcher.close()

    report = metrics.statistics.of("m", "1").as_json("m", "1")
    assert report["inference_count"] == 6 and report["execution_count"] == 2
    assert report["inference_stats"]["queue"]["count"] == 1
    assert report["inference_stats"]["compute_infer"]["count"] == 2
    assert [entry["batch_size"] for entry in report["batch_stats"]] == [2, 4]
    assert report["inference_stats"]["compute_infer"]["ns"] > 0


async def test_served_requests_appear_in_the_report_of_the_served_models(tmp_path):
    config = repository_config(tmp_path, {})
    runtime = FakeRuntime(num_classes=10)
    digit = png_bytes(np.zeros((8, 8), np.uint8))
    async with in_process(config, fake_loader(runtime)) as (client, serving):
        answers = await asyncio.gather(
            *(client.post("/predict", content=digit, headers=PNG) for _ in range(3))
        )
        bad = await client.post("/predict", content=b"not an image", headers=PNG)
        report = serving.metrics.statistics.report(serving.repository.handles)

    assert [answer.status_code for answer in answers] == [200] * 3 and bad.status_code == 400
    (digits,) = report["model_stats"]
    assert digits["name"] == "digits" and digits["version"] == "1"
    assert digits["inference_count"] == 3
    assert digits["inference_stats"]["success"]["count"] == 3
    assert digits["inference_stats"]["fail"]["count"] == 1

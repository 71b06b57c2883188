"""Prometheus metrics of one serving process, in their own registry (one per app).

`status` is the protocol's own code: the HTTP status for `protocol="rest"`, the gRPC status
name for `protocol="grpc"`. The same events feed Triton's statistics (`metrics.statistics`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    generate_latest,
)

from service.batcher import BatchRun
from service.statistics import ModelStatistics, Statistics

MODEL_STATES = ("LOADING", "READY", "FAILED", "UNLOADING", "UNAVAILABLE")
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SUCCESS_STATUSES = frozenset({"200", "OK"})
INFINITY = "+Inf"  # the last bucket's bound, as Prometheus writes it


@dataclass
class ModelFigures:
    """One model version's figures: cumulative since start, but `queue_depth` (now)."""

    requests: int = 0  # answered, any status
    errors: int = 0  # answered with a status other than success
    latency_buckets: dict[float, int] = field(
        default_factory=lambda: dict.fromkeys([*LATENCY_BUCKETS, math.inf], 0)
    )  # upper bound (seconds) -> requests at most that long
    batches: int = 0
    images: int = 0  # in those batches
    queue_depth: int = 0  # images waiting, every instance

    def to_dict(self) -> dict[str, Any]:
        buckets = [
            [bound if bound != math.inf else INFINITY, count]
            for bound, count in self.latency_buckets.items()
        ]
        return {
            "requests": self.requests,
            "errors": self.errors,
            "latency_buckets": buckets,
            "batches": self.batches,
            "images": self.images,
            "queue_depth": self.queue_depth,
        }


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.statistics = Statistics()
        self.requests = Counter(
            "blockserve_requests",
            "Inference requests answered, by model, version, status and protocol.",
            ["model", "version", "status", "protocol"],
            registry=self.registry,
        )
        self.queue_seconds = Histogram(
            "blockserve_queue_seconds",
            "Per request: time from entering the queue to the start of its first batch.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.compute_seconds = Histogram(
            "blockserve_compute_seconds",
            "Per batch: time the runtime spent computing it (in a worker thread).",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.total_seconds = Histogram(
            "blockserve_request_seconds",
            "Per request: total time in the server, decoding included, by protocol.",
            ["model", "version", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "blockserve_batch_size",
            "Images per dispatched batch.",
            ["model", "version"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "blockserve_queue_depth",
            "Images waiting in a model instance's queue.",
            ["model", "version", "instance"],
            registry=self.registry,
        )
        self._request_children: dict[
            tuple[str, str, str, str], tuple[Counter, Histogram, ModelStatistics | None, bool]
        ] = {}
        self.model_state = Enum(
            "blockserve_model_state",
            "Model version lifecycle state.",
            ["model", "version"],
            states=list(MODEL_STATES),
            registry=self.registry,
        )

    def record_request(
        self, model: str, version: str, status: str | int, protocol: str, seconds: float
    ) -> None:
        """Count one answered request (children looked up once per label set); `model` and
        `version` are empty when the request named no served model version."""
        key = (model, version, str(status), protocol)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(
                    model=model, version=version, status=key[2], protocol=protocol
                ),
                self.total_seconds.labels(model=model, version=version, protocol=protocol),
                self.statistics.of(model, version) if model and version else None,
                key[2] in SUCCESS_STATUSES,
            )
        count, latency, statistics, ok = children
        count.inc()
        latency.observe(seconds)
        if statistics is not None:
            statistics.request_answered(ok, seconds)

    def batch_observer(self, model: str, version: str, instance: int) -> BatchMetrics:
        """The metrics that a model version instance's batcher events update."""
        return BatchMetrics(self, model, version, instance)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def snapshot(self) -> dict[tuple[str, str], ModelFigures]:
        """The figures of every (model, version) the series have seen; request latencies are
        summed over the protocols."""
        figures: defaultdict[tuple[str, str], ModelFigures] = defaultdict(ModelFigures)
        for key, name, labels, value in _samples(self.requests):
            if name.endswith("_total"):
                figures[key].requests += int(value)
                if labels["status"] not in SUCCESS_STATUSES:
                    figures[key].errors += int(value)
        for key, name, labels, value in _samples(self.total_seconds):
            if name.endswith("_bucket"):
                figures[key].latency_buckets[float(labels["le"])] += int(value)
        for key, name, _, value in _samples(self.batch_size):
            if name.endswith("_count"):
                figures[key].batches += int(value)
            elif name.endswith("_sum"):
                figures[key].images += int(value)
        for key, _, _, value in _samples(self.queue_depth):
            figures[key].queue_depth += int(value)
        return dict(figures)


def _samples(
    collector: Counter | Histogram | Gauge,
) -> Iterator[tuple[tuple[str, str], str, dict[str, str], float]]:
    """Each sample of `collector` as ((model, version), sample name, labels, value)."""
    for family in collector.collect():
        for sample in family.samples:
            key = (sample.labels["model"], sample.labels["version"])
            yield key, sample.name, sample.labels, sample.value


class BatchMetrics:
    """A `service.batcher.BatchObserver` feeding one model instance's Prometheus series."""

    def __init__(self, metrics: Metrics, model: str, version: str, instance: int) -> None:
        labels = {"model": model, "version": version}
        self._depth = metrics.queue_depth.labels(**labels, instance=str(instance))
        self._queue_seconds = metrics.queue_seconds.labels(**labels)
        self._batch_size = metrics.batch_size.labels(**labels)
        self._compute_seconds = metrics.compute_seconds.labels(**labels)
        self._statistics = metrics.statistics.of(model, version)

    def queue_changed(self, depth: int) -> None:
        self._depth.set(depth)

    def batch_started(self, size: int, queue_waits: list[float]) -> None:
        self._batch_size.observe(size)
        for seconds in queue_waits:
            self._queue_seconds.observe(seconds)
        self._statistics.batch_started(queue_waits)

    def batch_finished(self, run: BatchRun) -> None:
        self._compute_seconds.observe(run.compute_seconds)
        self._statistics.batch_finished(run)

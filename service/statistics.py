"""Triton's model statistics (`GET /v2/models/stats`, gRPC `ModelStatistics`), counted from the
same events as the Prometheus metrics: the batcher's `BatchRun`s and queue waits, and every
answered request (`Metrics.record_request`).

Per model version, over all its instances, since the server started (per worker process):
- `success` / `fail`: answered requests and their time in the server (a refused or failed
  request attributed to the model is a failure);
- `queue`: per request, the time from entering the queue to the start of its first batch;
- `compute_input` / `compute_infer` / `compute_output`: per request part in a batch, the
  batch's time to gather its rows, run the model, and hand the rows back (a request larger
  than `max_batch_size` counts once per batch it spans), and per batch size in `batch_stats`;
- `inference_count`: images inferred; `execution_count`: batches run; `last_inference`:
  milliseconds since the epoch of the last batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from service.batcher import BatchRun

NANOSECONDS = 1_000_000_000


@dataclass(slots=True)
class Duration:
    """A count of events and their summed duration, Triton's `StatisticDuration`."""

    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += round(seconds * NANOSECONDS) * count

    def as_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass(slots=True)
class BatchSizeStatistics:
    compute_input: Duration
    compute_infer: Duration
    compute_output: Duration


class ModelStatistics:
    """One model's counters; fed on the event loop, read by the statistics endpoints."""

    def __init__(self) -> None:
        self.success = Duration()
        self.fail = Duration()
        self.queue = Duration()
        self.compute_input = Duration()
        self.compute_infer = Duration()
        self.compute_output = Duration()
        self.inference_count = 0
        self.execution_count = 0
        self.last_inference_ms = 0
        self.batch_sizes: dict[int, BatchSizeStatistics] = {}

    def request_answered(self, ok: bool, seconds: float) -> None:
        (self.success if ok else self.fail).add(seconds)

    def batch_started(self, queue_waits: list[float]) -> None:
        for seconds in queue_waits:
            self.queue.add(seconds)

    def batch_finished(self, run: BatchRun) -> None:
        self.last_inference_ms = time.time_ns() // 1_000_000
        if run.failed:
            return
        self.inference_count += run.size
        self.execution_count += 1
        self.compute_input.add(run.input_seconds, run.requests)
        self.compute_infer.add(run.compute_seconds, run.requests)
        self.compute_output.add(run.output_seconds, run.requests)
        by_size = self.batch_sizes.get(run.size)
        if by_size is None:
            by_size = self.batch_sizes[run.size] = BatchSizeStatistics(
                Duration(), Duration(), Duration()
            )
        by_size.compute_input.add(run.input_seconds)
        by_size.compute_infer.add(run.compute_seconds)
        by_size.compute_output.add(run.output_seconds)

    def as_json(self, name: str, version: str) -> dict[str, Any]:
        zero = Duration().as_json()
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.as_json(),
                "fail": self.fail.as_json(),
                "queue": self.queue.as_json(),
                "compute_input": self.compute_input.as_json(),
                "compute_infer": self.compute_infer.as_json(),
                "compute_output": self.compute_output.as_json(),
                "cache_hit": zero,
                "cache_miss": zero,
            },
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": stats.compute_input.as_json(),
                    "compute_infer": stats.compute_infer.as_json(),
                    "compute_output": stats.compute_output.as_json(),
                }
                for size, stats in sorted(self.batch_sizes.items())
            ],
            "memory_usage": [],
        }


class ServedModel(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...


class Statistics:
    """Every model version's `ModelStatistics`, created on first use."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str], ModelStatistics] = {}

    def of(self, model: str, version: str) -> ModelStatistics:
        stats = self._models.get((model, version))
        if stats is None:
            stats = self._models[model, version] = ModelStatistics()
        return stats

    def report(self, handles: Iterable[ServedModel]) -> dict[str, Any]:
        """Triton's `{"model_stats": [...]}` for `handles` (model handles), in their order."""
        return {
            "model_stats": [
                self.of(handle.name, handle.version).as_json(handle.name, handle.version)
                for handle in handles
            ]
        }

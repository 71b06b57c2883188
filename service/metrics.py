"""Prometheus metrics of one serving process, in their own registry (one per app).

`status` is the protocol's own code: the HTTP status for `protocol="rest"`, the gRPC status
name for `protocol="grpc"`.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    generate_latest,
)

MODEL_STATES = ("LOADING", "READY", "FAILED")
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "blockserve_requests",
            "Inference requests answered, by model, status and protocol.",
            ["model", "status", "protocol"],
            registry=self.registry,
        )
        self.queue_seconds = Histogram(
            "blockserve_queue_seconds",
            "Per request: time from entering the queue to the start of its first batch.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.compute_seconds = Histogram(
            "blockserve_compute_seconds",
            "Per batch: time the runtime spent computing it (in a worker thread).",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.total_seconds = Histogram(
            "blockserve_request_seconds",
            "Per request: total time in the server, decoding included, by protocol.",
            ["model", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "blockserve_batch_size",
            "Images per dispatched batch.",
            ["model"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "blockserve_queue_depth",
            "Images waiting in a model instance's queue.",
            ["model", "instance"],
            registry=self.registry,
        )
        self.model_state = Enum(
            "blockserve_model_state",
            "Model lifecycle state.",
            ["model"],
            states=list(MODEL_STATES),
            registry=self.registry,
        )

    def record_request(self, model: str, status: str | int, protocol: str, seconds: float) -> None:
        self.requests.labels(model=model, status=str(status), protocol=protocol).inc()
        self.total_seconds.labels(model=model, protocol=protocol).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

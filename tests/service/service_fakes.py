"""Test doubles and helpers shared by the serving tests."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import AsyncIterator

import httpx
import numpy as np
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from models import model_default_cfg
from models.preprocessing import default_preprocess
from service.app import create_app
from service.config import BatchingConfig, ModelConfig, RepositoryConfig, ServerConfig, parse_config
from service.imaging import Preprocess
from service.imaging.preprocess import export_input_size
from service.metrics import Metrics
from service.repository import LoadedModel, Loader
from service.serving import Serving


class FakeRuntime:
    """A controllable runtime: output row i = [sum(image_i), batch size, 0, ...] (num_classes).

    `gate` (cleared) blocks every `run` until set; batches containing an image whose first value
    is `FAIL` raise; `seen` records each batch's images (copied: the batcher reuses its buffer).
    """

    FAIL = -12345.0  # never a normalised pixel

    def __init__(self, *, blocked: bool = False, num_classes: int = 2) -> None:
        self.num_classes = num_classes
        self.gate = threading.Event()
        if not blocked:
            self.gate.set()
        self.started = threading.Semaphore(0)
        self.seen: list[np.ndarray] = []
        self.device = "cpu"

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.seen.append(batch.copy())
        self.started.release()
        if not self.gate.wait(timeout=30):
            raise TimeoutError("test gate never opened")
        flat = batch.reshape(len(batch), -1)
        if np.any(flat[:, 0] == self.FAIL):
            raise ValueError("injected failure")
        outputs = np.zeros((len(batch), self.num_classes), np.float32)
        outputs[:, 0] = flat.sum(axis=1)
        outputs[:, 1] = len(batch)
        return outputs

    def warmup(self) -> None:
        self.run(np.zeros((1, 1, 2, 2), np.float32))
        self.seen.clear()

    def wait_started(self, count: int = 1, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        for _ in range(count):
            if not self.started.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise TimeoutError("runtime was never called")

    @property
    def batch_sizes(self) -> list[int]:
        return [len(batch) for batch in self.seen]


def images(*values: float, shape: tuple[int, ...] = (1, 2, 2)) -> np.ndarray:
    """One image per value, every pixel equal to it: (N, *shape) float32."""
    return np.stack([np.full(shape, value, np.float32) for value in values])


def batching(**overrides) -> BatchingConfig:
    return BatchingConfig(**{"max_batch_size": 8, "max_delay_ms": 0, "max_queue": 64, **overrides})


def sample_value(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def fake_loader(
    runtime: FakeRuntime,
    *,
    failures: dict[str, str] | None = None,
    gate: threading.Event | None = None,
) -> Loader:
    """Loads every model onto `runtime` (one per instance); `failures` maps names to errors;
    loading blocks until `gate` is set."""

    def load(config: ModelConfig, server: ServerConfig, progress) -> LoadedModel:
        if gate is not None and not gate.wait(timeout=30):
            raise TimeoutError("loader gate never opened")
        if failures and config.name in failures:
            raise RuntimeError(failures[config.name])
        default = model_default_cfg(config.arch)
        input_size = export_input_size(config.preprocess, default, default.input_size[0])
        exported = default_preprocess(default, input_size)  # what the bundle manifest records
        preprocess = Preprocess.resolve(config.preprocess, exported)
        labels = config.labels or [f"class{i}" for i in range(runtime.num_classes)]
        return LoadedModel(
            runtimes=[runtime] * config.instances,
            manifest={"name": config.arch, "weights": {"trained": config.weights is not None}},
            preprocess=preprocess,
            labels=labels,
            input_name="input",
            output_name="logits",
            input_shape=preprocess.input_shape,
            num_classes=runtime.num_classes,
            device="cpu",
        )

    return load


def repository_config(tmp_path, *models: dict, **server) -> RepositoryConfig:
    """A config with gRPC off; each model dict defaults to a digits-shaped entry."""
    entries = [{"name": "digits", "arch": "resnet_digits", **model} for model in models]
    server = {"grpc": {"enabled": False}, "cache_dir": str(tmp_path / "bundles"), **server}
    return parse_config(
        {"server": server, "models": entries or [{"name": "digits", "arch": "resnet_digits"}]}
    )


@contextlib.asynccontextmanager
async def in_process(
    config: RepositoryConfig, loader: Loader, *, wait: bool = True
) -> AsyncIterator[tuple[httpx.AsyncClient, Serving]]:
    """The app with its lifespan running, and an httpx client speaking ASGI to it."""
    app = create_app(config, loader=loader)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://blockserve") as client:
            serving = app.state.serving
            if wait:
                await serving.repository.wait_loaded()
            yield client, serving


def png_bytes(pixels: np.ndarray, **save_options) -> bytes:
    """Encode uint8 (H, W) or (H, W, 3) pixels as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", **save_options)
    return buffer.getvalue()


def metric(text: str, name: str, **labels: str) -> float:
    """A sample's value from Prometheus text exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0

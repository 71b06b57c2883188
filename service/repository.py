"""The model repository: loads every configured model concurrently and routes inference.

Per model: export a bundle (cached; the exporter builds the network only on a cache miss) ->
load one runtime per instance -> warm up -> READY, with one `Batcher` per instance. A model
that fails is FAILED with its reason; the others still serve. Free of any web framework: REST
and gRPC share it through `await repository.get(name).infer(batch, deadline)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from models import create_model, model_default_cfg, model_spec
from models.digits import DIGITS_ARCH
from models.export import export_bundle, load_bundle
from models.summary import Summary, summarize
from service.batcher import Batcher, BatchRunner
from service.config import ModelConfig, RepositoryConfig, ServerConfig
from service.errors import InvalidInput, ModelNotFound, ModelNotReady
from service.imaging import Preprocess
from service.metrics import Metrics

log = logging.getLogger(__name__)

PLATFORMS = {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_torchscript"}
MODEL_VERSION = "1"


class ModelState(StrEnum):
    LOADING = "LOADING"
    READY = "READY"
    FAILED = "FAILED"


@dataclass
class LoadedModel:
    """What loading produced: warmed-up runtimes and everything the protocols describe."""

    runtimes: list[BatchRunner]
    manifest: dict[str, Any]
    preprocess: Preprocess
    labels: list[str]
    input_name: str
    output_name: str
    input_shape: tuple[int, ...]  # (C, H, W), no batch dimension
    num_classes: int
    device: str


Loader = Callable[[ModelConfig, ServerConfig, Callable[[str], None]], LoadedModel]


def load_model(
    config: ModelConfig, server: ServerConfig, progress: Callable[[str], None]
) -> LoadedModel:
    """Export (cached), load and warm up one model. Blocking: runs in a thread.

    The spec validates arch and overrides up front; the network itself is built (and the
    weights checked against it) by `export_bundle`, only when no identical bundle is cached.
    """
    default = model_default_cfg(config.arch)
    preprocess = Preprocess.resolve(config.preprocess, default)
    if config.weights is not None and not config.weights.is_file():
        raise FileNotFoundError(
            f"weights file {config.weights} not found"
            + (" (create it with `blockserve train-digits`)" if config.arch == DIGITS_ARCH else "")
        )
    num_classes = model_spec(config.arch, **config.overrides).head.num_classes
    labels = _labels(config.labels or _fitting(default.labels, num_classes), num_classes)
    bundle_dir = export_bundle(
        config.arch,
        fmt=config.format,
        weights=config.weights,
        overrides=config.overrides,
        cache_dir=server.cache_dir,
        preprocess=preprocess.to_dict(),
        labels=labels,
        max_batch=config.batching.max_batch_size,
        input_size=preprocess.input_shape,
        progress=progress,
    )
    bundle = load_bundle(bundle_dir)
    progress(f"loading {config.instances} runtime(s) from {bundle_dir}")
    options = runtime_options(config, server)
    runtimes = [_load_runtime(bundle, config.device, options) for _ in range(config.instances)]
    for runtime in runtimes:
        runtime.warmup()
    first = runtimes[0]
    return LoadedModel(
        runtimes=runtimes,
        manifest=bundle.manifest,
        preprocess=preprocess,
        labels=labels,
        input_name=first.input_meta.name,
        output_name=first.output_meta.name,
        input_shape=tuple(first.input_meta.shape[1:]),
        num_classes=num_classes,
        device=first.device,
    )


def runtime_options(config: ModelConfig, server: ServerConfig) -> dict[str, Any]:
    """The `load_runtime` options of the model's format (unset ones left to the runtime)."""
    if config.format != "onnx":
        return {}
    options = {
        "intra_op_threads": config.ort.intra_op_threads or server.ort_threads,
        "allow_spinning": config.ort.allow_spinning,
    }
    return {name: value for name, value in options.items() if value is not None}


def _load_runtime(bundle, device: str, options: dict[str, Any]):
    from service.runtimes import load_runtime  # imports onnxruntime: only when loading

    return load_runtime(bundle, device, **options)


def _fitting(labels: list[str] | None, num_classes: int) -> list[str] | None:
    """The default cfg's labels, unless overrides changed the class count."""
    return labels if labels is not None and len(labels) == num_classes else None


def _labels(labels: list[str] | None, num_classes: int) -> list[str]:
    if labels is None:
        return [str(index) for index in range(num_classes)]
    if len(labels) != num_classes:
        raise ValueError(f"{len(labels)} labels configured for a model with {num_classes} classes")
    return list(labels)


@dataclass(eq=False)
class ModelHandle:
    """One served model: its state, its batchers, and the shared inference entry point."""

    config: ModelConfig
    metrics: Metrics
    retry_after_s: float
    state: ModelState = ModelState.LOADING
    reason: str | None = None
    loaded: LoadedModel | None = None
    batchers: list[Batcher] = field(default_factory=list)
    announced: int = 0  # requests for this model still being decoded
    _summary: Summary | None = None
    _summary_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def version(self) -> str:
        return MODEL_VERSION

    @property
    def platform(self) -> str:
        return PLATFORMS[self.config.format]

    @property
    def trained(self) -> bool:
        return self.config.weights is not None

    def ready(self) -> LoadedModel:
        """The loaded model, or `ModelNotReady` naming the state and reason."""
        if self.state is not ModelState.READY or self.loaded is None:
            raise ModelNotReady(self.name, self.state, self.reason)
        return self.loaded

    async def infer(self, batch: np.ndarray, deadline: float | None = None) -> np.ndarray:
        """Run a preprocessed float32 (N, *input_shape) batch; `deadline` is time.monotonic()."""
        loaded = self.ready()
        if batch.dtype != np.float32 or tuple(batch.shape[1:]) != loaded.input_shape:
            raise InvalidInput(
                f"model {self.name!r} takes float32 (N, {', '.join(map(str, loaded.input_shape))})"
                f" batches, got {batch.dtype} {tuple(batch.shape)}"
            )
        batcher = min(self.batchers, key=lambda b: b.pending_images)
        return await batcher.infer(batch, deadline)

    @contextlib.contextmanager
    def announce(self) -> Iterator[None]:
        """Mark a request as on its way (decoding), so a free batcher may wait for it."""
        self.announced += 1
        try:
            yield
        finally:
            self.announced -= 1
            if not self.announced:
                for batcher in self.batchers:
                    batcher.poke()

    def summary(self) -> Summary:
        """The architecture summary at the served input size (computed once; blocking).

        Shapes and parameter counts do not depend on the weights, so the network is built
        here, on the first request, and not kept."""
        loaded = self.ready()
        with self._summary_lock:
            if self._summary is None:
                network = create_model(self.config.arch, **self.config.overrides).eval()
                self._summary = summarize(network, loaded.input_shape)
            return self._summary

    def describe(self) -> dict[str, Any]:
        """The `/models` entry."""
        loaded = self.loaded
        batching = self.config.batching
        return {
            "name": self.name,
            "arch": self.config.arch,
            "state": str(self.state),
            "reason": self.reason,
            "trained": self.trained,
            "weights": str(self.config.weights) if self.config.weights else "random-init",
            "format": self.config.format,
            "platform": self.platform,
            "device": loaded.device if loaded else self.config.device,
            "instances": self.config.instances,
            "batching": batching.model_dump(),
            "input_shape": [-1, *loaded.input_shape] if loaded else None,
            "num_classes": loaded.num_classes if loaded else None,
            "top_k": self.config.top_k,
            "queued_images": sum(b.queued_images for b in self.batchers),
        }

    def set_state(self, state: ModelState, reason: str | None = None) -> None:
        self.state, self.reason = state, reason
        self.metrics.model_state.labels(model=self.name).state(state.value)


class ModelRepository:
    """Every configured model, loaded concurrently in threads at `start()`."""

    def __init__(
        self, config: RepositoryConfig, metrics: Metrics, *, loader: Loader = load_model
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._loader = loader
        retry_after = config.server.retry_after_s
        self._handles = {
            entry.name: ModelHandle(entry, metrics, retry_after) for entry in config.models
        }
        for handle in self._handles.values():
            handle.set_state(ModelState.LOADING)
        workers = sum(entry.instances for entry in config.models)
        self._infer_pool = ThreadPoolExecutor(workers, thread_name_prefix="infer")
        self._load_pool = ThreadPoolExecutor(len(config.models), thread_name_prefix="load")
        self._loading: list[asyncio.Task[None]] = []
        self._closed = False

    @property
    def default_name(self) -> str:
        return self.config.default_model

    @property
    def names(self) -> list[str]:
        return list(self._handles)

    @property
    def handles(self) -> list[ModelHandle]:
        return list(self._handles.values())

    def get(self, name: str | None = None) -> ModelHandle:
        """The named model (the default one for None), or `ModelNotFound` listing them all."""
        handle = self._handles.get(self.default_name if name is None else name)
        if handle is None:
            raise ModelNotFound(name, self.names)
        return handle

    @property
    def ready(self) -> bool:
        """Readiness: the default model is READY and the server is not shutting down."""
        return not self._closed and self.get().state is ModelState.READY

    def start(self) -> None:
        """Start loading every model concurrently; returns at once (see `wait_loaded`)."""
        loop = asyncio.get_running_loop()
        self._loading = [
            loop.create_task(self._load(handle), name=f"load:{handle.name}")
            for handle in self._handles.values()
        ]

    async def wait_loaded(self) -> None:
        """Wait until every model is READY or FAILED."""
        await asyncio.gather(*self._loading)

    async def _load(self, handle: ModelHandle) -> None:
        started = time.monotonic()
        loop = asyncio.get_running_loop()

        def progress(message: str) -> None:
            log.info("model %s: %s", handle.name, message)

        try:
            loaded = await loop.run_in_executor(
                self._load_pool, self._loader, handle.config, self.config.server, progress
            )
        except Exception as error:
            log.exception("model %s failed to load", handle.name)
            handle.set_state(ModelState.FAILED, f"{type(error).__name__}: {error}")
            return
        if self._closed:
            return
        handle.loaded = loaded
        handle.batchers = [
            Batcher(
                runtime,
                model=handle.name,
                instance=index,
                input_shape=loaded.input_shape,
                batching=handle.config.batching,
                executor=self._infer_pool,
                metrics=self.metrics,
                retry_after_s=handle.retry_after_s,
                more_coming=lambda handle=handle: handle.announced > 0,
            )
            for index, runtime in enumerate(loaded.runtimes)
        ]
        for batcher in handle.batchers:
            batcher.start()
        handle.set_state(ModelState.READY)
        log.info("model %s READY in %.1f s", handle.name, time.monotonic() - started)

    async def close(self) -> None:
        """Stop accepting, finish every queued request, stop the batchers."""
        self._closed = True
        await asyncio.gather(*(b.close() for h in self._handles.values() for b in h.batchers))
        for task in self._loading:
            task.cancel()
        self._infer_pool.shutdown(wait=True)
        self._load_pool.shutdown(wait=False, cancel_futures=True)

"""The model repository: loads models concurrently, serves their versions, routes inference.

Per model version: export a bundle (cached; the exporter builds the network only on a cache
miss) -> load one runtime per instance -> warm up -> READY, with one `Batcher` per instance. A
version that fails is FAILED with its reason; everything else still serves. Models are loaded
and unloaded at run time (`load`, `unload`): a new version loads while the old ones serve, and
requests that name no version switch to it in one step when it is READY; an unloaded version
answers everything queued for it before its runtimes are released. Free of any web framework:
REST and gRPC share it through `await repository.get(name, version).infer(batch, deadline)`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from models.export import Bundle, PrecisionError
from models.preprocessing import served_labels
from models.recipes import ensure_weights, recipe_for
from models.summary import Summary
from service.batcher import Batcher, outputs_of
from service.calibration import model_reduced_precision
from service.config import ModelConfig, RepositoryConfig, ServerConfig, VersionPolicy
from service.errors import (
    ExportUnavailable,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ModelVersionNotFound,
    QueueFull,
    quoted,
)
from service.imaging import Preprocess
from service.memory import release_free_memory
from service.metrics import Metrics
from service.model_bundles import served_bundle
from service.network import network_of
from service.runtimes.base import DeviceUnavailableError, Runtime

log = logging.getLogger(__name__)

# Triton's platform names, so that its tools recognise them.
PLATFORMS = {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch"}
# Threads that may run batches at once, over every model instance (made as needed).
MAX_INFER_THREADS = 64


class ModelState(StrEnum):
    LOADING = "LOADING"
    READY = "READY"
    FAILED = "FAILED"
    UNLOADING = "UNLOADING"  # answering what it holds; refuses new requests
    UNAVAILABLE = "UNAVAILABLE"  # unloaded


@dataclass
class LoadedModel:
    """What loading produced: warmed-up runtimes and everything the protocols describe."""

    runtimes: list[Runtime]
    manifest: dict[str, Any]
    preprocess: Preprocess
    labels: list[str]
    input_name: str
    output_name: str
    input_shape: tuple[int, ...]  # (C, H, W), no batch dimension
    num_classes: int
    device: str
    inline_max_images: int = 0  # batches up to this size run on the event loop
    bundle_dir: Path | None = None  # the exported bundle the runtimes were loaded from


Loader = Callable[[ModelConfig, ServerConfig, Callable[[str], None]], LoadedModel]


def load_model(
    config: ModelConfig, server: ServerConfig, progress: Callable[[str], None]
) -> LoadedModel:
    """Make missing weights (`weights_recipe`), export (cached), load and warm up one model.
    Blocking: runs in a thread.

    The network (a registry arch or a spec given whole, `service.network`), its overrides and
    the configured labels are checked up front; the network itself is built (and the weights
    checked against it) by `export_bundle`, only when no identical bundle is cached. Preprocess
    and labels are the config's, resolved against the bundle manifest's.
    """
    network = network_of(config)
    num_classes = network.spec.num_classes
    registry = config.arch is not None
    weights = _weights(config, progress)

    def export(export_bundle: Callable[..., Path]) -> Path:
        return export_bundle(
            config.arch or config.name,
            spec=None if registry else network.spec,
            fmt=config.format,
            weights=weights,
            overrides=config.overrides if registry else None,
            cache_dir=server.cache_dir,
            max_batch=config.batching.max_batch_size,
            input_size=network.input_size,
            progress=progress,
            reduced=model_reduced_precision(config, network),
        )

    bundle = served_bundle(config, network, weights, server.cache_dir, export)
    preprocess = Preprocess.resolve(config.preprocess, bundle.manifest["preprocess"])
    labels = served_labels(config.labels, bundle.manifest["labels"], num_classes)
    progress(f"loading {config.instances} runtime(s) from {bundle.path}")
    options = runtime_options(config, server)
    runtimes = [
        _load_runtime(config.name, bundle, config.device, options) for _ in range(config.instances)
    ]
    for runtime in runtimes:
        runtime.warmup()
    first = runtimes[0]
    input_shape = tuple(first.input_meta.shape[1:])
    return LoadedModel(
        runtimes=runtimes,
        manifest=bundle.manifest,
        preprocess=preprocess,
        labels=labels,
        input_name=first.input_meta.name,
        output_name=first.output_meta.name,
        input_shape=input_shape,
        num_classes=num_classes,
        device=first.device,
        inline_max_images=inline_batch_limit(
            first,
            input_shape,
            config.batching.max_batch_size,
            config.batching.inline_max_ms / 1000,
        ),
        bundle_dir=bundle.path,
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


def _load_runtime(model: str, bundle: Bundle, device: str, options: dict[str, Any]) -> Runtime:
    from service.runtimes import load_runtime  # imports onnxruntime: only when loading

    try:
        return load_runtime(bundle, device, **options)
    except ImportError as error:  # the TorchScript runtime without torch
        raise ExportUnavailable(model, f"the {bundle.format} runtime") from error


def _weights(config: ModelConfig, progress: Callable[[str], None]) -> Path | None:
    """The configured weights file, made by the model's `weights_recipe` when missing."""
    if config.weights_recipe is not None:
        # ModelConfig requires `weights` and `arch` with a recipe
        assert config.weights is not None and config.arch is not None
        try:
            return ensure_weights(config.weights_recipe, config.arch, config.weights, progress)
        except ImportError as error:  # the recipe trains with torch
            needs = f"its weights made by recipe {config.weights_recipe!r}"
            raise ExportUnavailable(config.name, needs) from error
    if config.weights is not None and not config.weights.is_file():
        recipe = recipe_for(config.arch_name)
        hint = f" (set `weights_recipe: {recipe}` to make it at start)" if recipe else ""
        raise FileNotFoundError(f"weights file {config.weights} not found{hint}")
    return config.weights


@dataclass(eq=False)
class ModelHandle:
    """One served model version: its state, its batchers, and the shared inference entry
    point."""

    config: ModelConfig
    metrics: Metrics
    retry_after_s: float
    version: str = "1"
    state: ModelState = ModelState.LOADING
    reason: str | None = None
    loaded: LoadedModel | None = None
    batchers: list[Batcher] = field(default_factory=list)
    admitted: int = 0  # requests admitted and still being read or decoded, not yet queued

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def platform(self) -> str:
        return PLATFORMS[self.config.format]

    @property
    def trained(self) -> bool:
        """Whether the served weights are trained: the bundle's record once loaded."""
        if self.loaded is not None:
            return self.loaded.manifest["weights"]["trained"]
        return self.config.weights is not None

    def ready(self) -> LoadedModel:
        """The loaded model, or `ModelNotReady` naming the state and reason (a LOADING model
        says when to retry)."""
        if self.state is not ModelState.READY or self.loaded is None:
            retry_after = self.retry_after_s if self.state is ModelState.LOADING else None
            raise ModelNotReady(self.name, self.state, self.reason, retry_after_s=retry_after)
        return self.loaded

    def admission(self) -> Admission:
        """Count a request against the model's queue before its body is read or decoded
        (a context manager giving the loaded model).

        `QueueFull` at once when the queued images and the requests already admitted (one
        image each until decoded) fill every instance's `max_queue`. While admitted requests
        are on their way, a free batcher may wait for them (`max_delay_ms`)."""
        return Admission(self)

    def submit(self, batch: np.ndarray, deadline: float | None = None) -> asyncio.Future:
        """Queue a preprocessed float32 (N, *input_shape) batch on the instance with the
        fewest images queued or computing; the future gets its outputs. `deadline` is
        time.monotonic(); cancelling the future drops the request if not yet computing."""
        loaded = self.ready()
        if batch.dtype != np.float32 or tuple(batch.shape[1:]) != loaded.input_shape:
            raise InvalidInput(
                f"model {self.name!r} takes float32 (N, {', '.join(map(str, loaded.input_shape))})"
                f" batches, got {batch.dtype} {tuple(batch.shape)}"
            )
        batcher = min(self.batchers, key=lambda b: b.pending_images)
        return batcher.submit(batch, deadline)

    async def infer(self, batch: np.ndarray, deadline: float | None = None) -> np.ndarray:
        """`submit` and wait; the request is dropped if the caller is cancelled."""
        return await outputs_of(self.submit(batch, deadline))

    def summary(self) -> Summary:
        """The architecture summary at the served input size, as the export recorded it in the
        bundle manifest (the network is not built again)."""
        return Summary.from_json(self.ready().manifest["summary"])

    def describe(self) -> dict[str, Any]:
        """The `/models` entry."""
        loaded = self.loaded
        batching = self.config.batching
        return {
            "name": self.name,
            "version": self.version,
            "arch": self.config.arch_name,
            "state": str(self.state),
            "reason": self.reason,
            "trained": self.trained,
            "weights": self.config.weights.name if self.config.weights else "random-init",
            "format": self.config.format,
            "precision": self.config.precision,
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
        self.metrics.model_state.labels(model=self.name, version=self.version).state(state.value)

    @property
    def load_failure(self) -> str:
        """What the client that asked for this version's load is told when it did not load."""
        return f"failed to load model {quoted(self.name)} version {self.version}: {self.reason}"

    def unload(self) -> Awaitable[None]:
        """Refuse new requests from now on; the awaitable answers every queued one, then
        lets the runtimes go."""
        self.set_state(ModelState.UNLOADING, "unloading")
        for batcher in self.batchers:
            batcher.stop_accepting()
        return self._release()

    async def _release(self) -> None:
        await asyncio.gather(*(batcher.close() for batcher in self.batchers))
        self.batchers, self.loaded = [], None
        self.set_state(ModelState.UNAVAILABLE, "unloaded")


class Admission:
    """One request counted against its model while it is read and decoded (`__enter__`
    refuses it with `QueueFull` when the model is full)."""

    __slots__ = ("handle",)

    def __init__(self, handle: ModelHandle) -> None:
        self.handle = handle

    def __enter__(self) -> LoadedModel:
        handle = self.handle
        loaded = handle.ready()
        queued = sum(batcher.queued_images for batcher in handle.batchers)
        capacity = sum(batcher.max_queue for batcher in handle.batchers)
        if queued + handle.admitted >= capacity:
            raise QueueFull(handle.name, queued + handle.admitted, capacity, handle.retry_after_s)
        handle.admitted += 1
        return loaded

    def __exit__(self, *exc_info: object) -> None:
        handle = self.handle
        handle.admitted -= 1
        if not handle.admitted:
            for batcher in handle.batchers:
                batcher.poke()


# Load failures whose message describes the user's config or files, not the server's insides.
_CONFIG_ERRORS = (
    LookupError,
    ValueError,
    FileNotFoundError,
    ExportUnavailable,
    DeviceUnavailableError,
    PrecisionError,
)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^\s'\"/]+/)*([^\s'\"/]+)")


def load_failure(error: Exception) -> str:
    """A FAILED model's reason as clients see it: a config problem's message with absolute
    paths cut to their file name; any other error only by its type (the log has the rest)."""
    if isinstance(error, _CONFIG_ERRORS):
        message = _ABSOLUTE_PATH.sub(r"\1", str(error))
        return f"{type(error).__name__}: {message}"
    return f"{type(error).__name__} while loading (see the server log)"


def inline_batch_limit(
    runtime: Runtime, input_shape: tuple[int, ...], max_batch: int, max_seconds: float
) -> int:
    """The largest batch whose compute time, estimated by a line through the timings of
    batch 1 and `max_batch`, is at most `max_seconds` (0 when even one image takes longer)."""
    if max_seconds <= 0:
        return 0
    one, full = (
        _best_of(runtime, np.zeros((size, *input_shape), np.float32)) for size in (1, max_batch)
    )
    if one > max_seconds:
        return 0
    per_image = max(full - one, 0.0) / max(max_batch - 1, 1)
    if per_image == 0:
        return max_batch
    return min(max_batch, 1 + int((max_seconds - one) / per_image))


def _best_of(runtime: Runtime, batch: np.ndarray, runs: int = 3) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        runtime.run(batch)
        timings.append(time.perf_counter() - started)
    return min(timings)


@dataclass(eq=False)
class ServedModel:
    """A model name's versions (by version string) and the policy that selects them."""

    name: str
    policy: VersionPolicy
    versions: dict[str, ModelHandle] = field(default_factory=dict)
    last_error: str | None = None  # of the last load that failed (served versions stayed)

    def ordered(self) -> list[ModelHandle]:
        """The versions, lowest first."""
        return sorted(self.versions.values(), key=lambda handle: int(handle.version))

    def serving(self) -> ModelHandle:
        """What a request naming no version gets: the highest READY version, else the
        highest version (whose state then answers: LOADING, FAILED)."""
        ordered = self.ordered()
        ready = [handle for handle in ordered if handle.state is ModelState.READY]
        return (ready or ordered)[-1]

    def next_version(self) -> int:
        return max((int(version) for version in self.versions), default=0) + 1


class ModelRepository:
    """The served models and their versions: those of the config, loaded concurrently at
    `start()`, and those loaded or unloaded at run time."""

    def __init__(
        self, config: RepositoryConfig, metrics: Metrics, *, loader: Loader = load_model
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._loader = loader
        self._models: dict[str, ServedModel] = {}
        self._unloaded: dict[str, str] = {}  # name -> why it is no longer served
        self._default = config.default_model
        self._infer_pool = ThreadPoolExecutor(MAX_INFER_THREADS, thread_name_prefix="infer")
        self._load_pool = ThreadPoolExecutor(max(2, len(config.models)), thread_name_prefix="load")
        self._loading: set[asyncio.Task[None]] = set()
        self._closed = False
        self._draining = False
        for entry in config.models:
            self._add(entry.model_copy(update={"version": entry.version or 1}))

    @property
    def default_name(self) -> str:
        return self._default

    @property
    def names(self) -> list[str]:
        return list(self._models)

    @property
    def handles(self) -> list[ModelHandle]:
        """Every version of every model."""
        return [handle for model in self._models.values() for handle in model.versions.values()]

    @property
    def unloaded(self) -> dict[str, str]:
        """Models no longer served, with the reason (Triton's index lists them)."""
        return dict(self._unloaded)

    def get(self, name: str | None = None, version: str | None = None) -> ModelHandle:
        """The named model's `version`, or the version serving requests that name none;
        the default model for None. `ModelNotFound` / `ModelVersionNotFound` list what
        exists."""
        key = self.default_name if name is None else name
        model = self._models.get(key)
        if model is None:
            raise ModelNotFound(key, self.names)
        if not version:
            return model.serving()
        handle = model.versions.get(version)
        if handle is None:
            raise ModelVersionNotFound(key, version, [h.version for h in model.ordered()])
        return handle

    def version_names(self, name: str) -> list[str]:
        """Model `name`'s versions, lowest first."""
        return [handle.version for handle in self.model(name).ordered()]

    def model(self, name: str) -> ServedModel:
        """Model `name`'s versions and policy (`ModelNotFound` when it is not served)."""
        model = self._models.get(name)
        if model is None:
            raise ModelNotFound(name, self.names)
        return model

    @property
    def ready(self) -> bool:
        """Readiness: not draining, and every model serving a READY version
        (`server.strict_readiness`), else the default one."""
        return self.not_ready_reason is None

    @property
    def not_ready_reason(self) -> str | None:
        """Why the server is not ready (None when it is): the shutdown, or each model readiness
        waits for that has no READY version, with its state and reason."""
        if self._closed or self._draining:
            return "shutting down"
        if self.config.server.strict_readiness:
            awaited = list(self._models.values())
        elif (default := self._models.get(self.default_name)) is not None:
            awaited = [default]
        else:
            return f"the default model {self.default_name!r} is not served"
        serving = (model.serving() for model in awaited)
        waiting = [handle for handle in serving if handle.state is not ModelState.READY]
        if not waiting:
            return None
        states = [
            f"{handle.name} {handle.state}" + (f" ({handle.reason})" if handle.reason else "")
            for handle in waiting
        ]
        return f"models not ready: {', '.join(states)}"

    @property
    def draining(self) -> bool:
        return self._draining

    def drain(self) -> None:
        """The server is shutting down: readiness turns false; requests are still served."""
        self._draining = True

    def set_default(self, name: str) -> None:
        """Serve model `name` to requests that name no model (`ModelNotFound` if absent)."""
        self.get(name)
        self._default = name

    def start(self) -> None:
        """Start loading every configured version concurrently; returns at once (see
        `wait_loaded`)."""
        for handle in self.handles:
            self._spawn_load(handle)

    async def wait_loaded(self) -> None:
        """Wait until every version being loaded is READY or FAILED."""
        while self._loading:
            await asyncio.gather(*self._loading, return_exceptions=True)

    async def load(self, config: ModelConfig) -> ModelHandle:
        """Load `config` as a version of its model (its `version`, else the next free
        number) and wait until it is READY or FAILED. A version that is already served keeps
        serving until its replacement is READY; versions the policy no longer selects are
        then unloaded. A FAILED load leaves every served version as it was."""
        if self._closed or self._draining:
            raise ModelNotReady(config.name, "SHUTTING_DOWN", "the server is shutting down")
        model = self._models.get(config.name)
        version = config.version or (model.next_version() if model else 1)
        if not config.version_policy.admits(version):
            raise InvalidInput(
                f"model {config.name!r}: version {version} is outside its version_policy "
                f"(specific {config.version_policy.specific})"
            )
        handle = self._new_handle(config.model_copy(update={"version": version}))
        await self._spawn_load(handle)
        served = self._models.get(config.name)
        if handle.state is ModelState.READY:
            await self._settle(handle)
        elif served is not None:
            served.last_error = handle.reason
        else:
            self._add_handle(handle)  # a new model's failed load stays visible: 503 + reason
        return handle

    async def unload(self, name: str, version: str | None = None) -> None:
        """Stop serving model `name` (every version, or `version`): new requests get 404 at
        once, everything queued is answered, then the runtimes are released."""
        model = self._models.get(name)
        if model is None:
            raise ModelNotFound(name, self.names)
        if version:
            self.get(name, version)  # ModelVersionNotFound
            handles = [model.versions.pop(version)]
            if not model.versions:
                del self._models[name]
        else:
            handles = list(model.versions.values())
            del self._models[name]
        if name not in self._models:
            self._unloaded[name] = "unloaded"
            if self._default == name and self._models:
                self._default = next(iter(self._models))
        await asyncio.gather(*(handle.unload() for handle in handles))
        release_free_memory()

    def add_failed(self, name: str, reason: str) -> ModelHandle:
        """Show model `name` (not served) as FAILED with `reason` without loading anything: a
        model whose config could not even be read, e.g. a broken model repository directory."""
        config = ModelConfig.model_construct(name=name, version=1, arch="unknown")
        handle = self._new_handle(config)
        handle.set_state(ModelState.FAILED, reason)
        self._add_handle(handle)
        return handle

    def _add(self, config: ModelConfig) -> ModelHandle:
        handle = self._new_handle(config)
        self._add_handle(handle)
        return handle

    def _new_handle(self, config: ModelConfig) -> ModelHandle:
        handle = ModelHandle(
            config, self.metrics, self.config.server.retry_after_s, version=str(config.version)
        )
        handle.set_state(ModelState.LOADING)
        return handle

    def _add_handle(self, handle: ModelHandle) -> None:
        model = self._models.get(handle.name)
        if model is None:
            model = self._models[handle.name] = ServedModel(
                handle.name, handle.config.version_policy
            )
        model.versions[handle.version] = handle
        self._unloaded.pop(handle.name, None)

    async def _settle(self, handle: ModelHandle) -> None:
        """`handle` is READY: put it in place in one step (a version it replaces, and the
        versions its policy no longer selects, are unloaded after the switch)."""
        model = self._models.get(handle.name)
        replaced = model.versions.get(handle.version) if model else None
        self._add_handle(handle)
        model = self._models[handle.name]
        model.policy = handle.config.version_policy
        selected = model.policy.selects([int(v) for v in model.versions])
        retired = [
            model.versions.pop(version)
            for version in list(model.versions)
            if int(version) not in selected
        ]
        leaving = [h for h in [replaced, *retired] if h is not None and h is not handle]
        await asyncio.gather(*(old.unload() for old in leaving))
        if leaving:
            release_free_memory()

    def _spawn_load(self, handle: ModelHandle) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(
            self._load(handle), name=f"load:{handle.name}:{handle.version}"
        )
        self._loading.add(task)
        task.add_done_callback(self._loading.discard)
        return task

    async def _load(self, handle: ModelHandle) -> None:
        started = time.monotonic()
        loop = asyncio.get_running_loop()

        def progress(message: str) -> None:
            log.info("model %s version %s: %s", handle.name, handle.version, message)

        try:
            loaded = await loop.run_in_executor(
                self._load_pool, self._loader, handle.config, self.config.server, progress
            )
        except Exception as error:
            log.exception("model %s version %s failed to load", handle.name, handle.version)
            handle.set_state(ModelState.FAILED, load_failure(error))
            return
        if self._closed:
            return
        handle.loaded = loaded
        batching = handle.config.batching
        handle.batchers = [
            Batcher(
                runtime,
                name=handle.name,
                input_shape=loaded.input_shape,
                max_batch_size=batching.max_batch_size,
                max_delay_s=batching.max_delay_ms / 1000,
                max_queue=batching.max_queue,
                executor=self._infer_pool,
                observer=self.metrics.batch_observer(handle.name, handle.version, index),
                inline_max_images=loaded.inline_max_images,
                retry_after_s=handle.retry_after_s,
                more_coming=lambda: handle.admitted > 0,
            )
            for index, runtime in enumerate(loaded.runtimes)
        ]
        for batcher in handle.batchers:
            batcher.start()
        handle.set_state(ModelState.READY)
        log.info(
            "model %s version %s READY in %.1f s; batches of up to %d images run on the event loop",
            handle.name,
            handle.version,
            time.monotonic() - started,
            loaded.inline_max_images,
        )

    async def close(self) -> None:
        """Stop accepting, finish every queued request, stop the batchers."""
        self._closed = True
        batchers = [batcher for handle in self.handles for batcher in handle.batchers]
        for batcher in batchers:  # before any await: no request slips in meanwhile
            batcher.stop_accepting()
        await asyncio.gather(*(batcher.close() for batcher in batchers))
        for task in self._loading:
            task.cancel()
        self._infer_pool.shutdown(wait=True)
        self._load_pool.shutdown(wait=False, cancel_futures=True)

"""The raw-engine ceiling, measured in-process with blockserve's own loading and imaging code.

`load_model` is what the server runs at startup (export from the cache, ONNX Runtime with the
config's thread settings, warm-up), and `decode_image` is what its decode pool runs. The loop
uses both cores as the server does: `decode_threads` threads decode the next batch while ONNX
Runtime (its own intra-op threads) computes the current one, in one lane per model instance.
`EngineRig` loads once and measures on demand, so head-to-head rounds (`bench/serving/paired.py`)
can alternate it with a served run without reloading.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.serving.results import Ceiling, CeilingPoint
from service.config import ModelConfig, ServerConfig
from service.imaging import decode_image, decode_pool
from service.repository import load_model


class EngineRig:
    """One model loaded the way the server loads it, and the in-process measurements on it."""

    def __init__(self, config: ModelConfig, server: ServerConfig, blobs: list[bytes]) -> None:
        self.name = config.name
        self.max_batch_size = config.batching.max_batch_size
        self.loaded = load_model(config, server, progress=lambda message: None)
        self.preprocess = self.loaded.preprocess
        self.blobs = blobs
        self.decode_threads = server.decode_threads
        self.decode_niceness = server.decode_niceness
        self.max_pixels = server.limits.max_image_pixels
        self.bundle_dir = _bundle_dir(server.cache_dir, self.loaded.manifest)

    def decode_ms(self, samples: int) -> float:
        """Median decode + preprocess of one image, on this thread."""
        out = np.empty(self.preprocess.input_shape, np.float32)  # (C, H, W)
        return _median_ms(lambda i: self._decode(i, out), samples)

    def engine_b1_ms(self, samples: int) -> float:
        """Median runtime call at batch 1."""
        runtime = self.loaded.runtimes[0]
        shape = (1, *self.preprocess.input_shape)
        batch = np.random.default_rng(0).standard_normal(shape, np.float32)  # (1, C, H, W)
        runtime.run(batch)
        return _median_ms(lambda i: runtime.run(batch), samples)

    def serial_ms(self, seconds: float) -> float:
        """Median of one request's work done serially with no server, over `seconds`: decode +
        preprocess one image, then the engine at batch 1."""
        runtime = self.loaded.runtimes[0]
        batch = np.empty((1, *self.preprocess.input_shape), np.float32)  # (1, C, H, W)

        def one(index: int) -> None:
            self._decode(index, batch[0])
            runtime.run(batch)

        one(0)
        timings, stop_at = [], time.perf_counter() + seconds
        while time.perf_counter() < stop_at or len(timings) < 3:
            started = time.perf_counter()
            one(len(timings))
            timings.append(time.perf_counter() - started)
        return statistics.median(timings) * 1000

    def throughput(self, batch_size: int, seconds: float, max_images: int) -> CeilingPoint:
        """Decode + preprocess + engine pipelined over both cores at `batch_size`: one lane per
        runtime instance, as the server runs one batcher per instance; all lanes share one
        pool of `decode_threads` decoders, which fill batch k+1 while the engine runs batch k."""
        order = itertools.count()
        runtimes, input_shape = self.loaded.runtimes, self.preprocess.input_shape

        with decode_pool(self.decode_threads, self.decode_niceness) as decoders:

            def fill(batch: np.ndarray) -> np.ndarray:  # (B, C, H, W)
                picks = [next(order) for _ in range(batch_size)]
                list(
                    decoders.map(
                        lambda row: self._decode(picks[row], batch[row]), range(batch_size)
                    )
                )
                return batch

            def lane(runtime, stop_at: float, cap: int) -> int:
                buffers = [np.empty((batch_size, *input_shape), np.float32) for _ in range(2)]
                images, turn = 0, 0
                with ThreadPoolExecutor(1) as feeder:
                    pending = feeder.submit(fill, buffers[turn])
                    while images < cap and time.perf_counter() < stop_at:
                        batch = pending.result()
                        turn ^= 1
                        pending = feeder.submit(fill, buffers[turn])
                        runtime.run(batch)
                        images += batch_size
                    pending.result()
                return images

            warmup = np.empty((batch_size, *input_shape), np.float32)
            for runtime in runtimes:  # first calls at a new batch size allocate
                runtime.run(fill(warmup))
            with ThreadPoolExecutor(len(runtimes)) as lanes:
                started = time.perf_counter()
                cap = -(-max_images // len(runtimes))
                counts = list(lanes.map(lambda rt: lane(rt, started + seconds, cap), runtimes))
                elapsed = time.perf_counter() - started
        return CeilingPoint(batch_size, sum(counts), elapsed)

    def _decode(self, index: int, out: np.ndarray) -> None:
        decode_image(self.blobs[index % len(self.blobs)], self.preprocess, self.max_pixels, out)


def measure_ceiling(
    rig: EngineRig, *, batch_sizes: list[int], seconds: float, max_images: int, latency_samples: int
) -> Ceiling:
    """Throughput of decode + preprocess + engine at each batch size, and batch-1 latencies."""
    decode_ms = rig.decode_ms(latency_samples)
    engine_b1_ms = rig.engine_b1_ms(latency_samples)
    points = [rig.throughput(size, seconds, max_images) for size in batch_sizes]
    return Ceiling(rig.name, points, decode_ms, engine_b1_ms)


def _median_ms(work, samples: int) -> float:
    timings = []
    for index in range(samples):
        started = time.perf_counter()
        work(index)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def _bundle_dir(cache_dir: Path, manifest: dict) -> Path:
    """The bundle directory the server will load (export is cached, so it is the same file)."""
    for candidate in sorted(cache_dir.glob("*/manifest.json")):
        if json.loads(candidate.read_text()).get("cache_key") == manifest.get("cache_key"):
            return candidate.parent
    raise FileNotFoundError(f"no bundle with cache_key {manifest.get('cache_key')} in {cache_dir}")

"""The raw-engine ceiling, measured in-process with blockserve's own loading and imaging code.

`load_model` is what the server runs at startup (export from the cache, ONNX Runtime with the
config's thread settings, warm-up), and `decode_image` is what its decode pool runs. The loop
uses both cores as the server does: `decode_threads` threads decode the next batch while ONNX
Runtime (its own intra-op threads) computes the current one, in one lane per model instance.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from service.config import ModelConfig, ServerConfig
from service.imaging import Preprocess, decode_image
from service.repository import load_model


@dataclass(frozen=True)
class CeilingPoint:
    batch_size: int
    images: int
    seconds: float

    @property
    def throughput(self) -> float:
        return self.images / self.seconds


@dataclass(frozen=True)
class Ceiling:
    model: str
    points: list[CeilingPoint]
    decode_ms: float  # median decode + preprocess of one image, one thread
    engine_b1_ms: float  # median runtime call at batch 1

    @property
    def best(self) -> CeilingPoint:
        return max(self.points, key=lambda point: point.throughput)

    @property
    def serial_b1_ms(self) -> float:
        """What one request costs with no server: decode + preprocess + engine at batch 1."""
        return self.decode_ms + self.engine_b1_ms

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "points": [{**asdict(p), "throughput": p.throughput} for p in self.points],
            "best_batch_size": self.best.batch_size,
            "throughput": self.best.throughput,
            "decode_ms": self.decode_ms,
            "engine_b1_ms": self.engine_b1_ms,
            "serial_b1_ms": self.serial_b1_ms,
        }


def measure_ceiling(
    config: ModelConfig,
    server: ServerConfig,
    blobs: list[bytes],
    *,
    batch_sizes: list[int],
    seconds: float,
    max_images: int,
    latency_samples: int,
) -> tuple[Ceiling, Path]:
    """Throughput of decode + preprocess + engine at each batch size, batch-1 latencies, and
    the bundle directory the server will load (export is cached, so it is the same file)."""
    loaded = load_model(config, server, progress=lambda message: None)
    runtime, preprocess = loaded.runtimes[0], loaded.preprocess
    max_pixels = server.limits.max_image_pixels
    decode_ms = _decode_ms(blobs, preprocess, max_pixels, latency_samples)
    engine_b1_ms = _engine_ms(runtime, preprocess, latency_samples)
    points = [
        _pipelined(
            loaded.runtimes, preprocess, blobs, size, server.decode_threads, seconds, max_images
        )
        for size in batch_sizes
    ]
    return Ceiling(config.name, points, decode_ms, engine_b1_ms), _bundle_dir(
        server.cache_dir, loaded.manifest
    )


def _bundle_dir(cache_dir: Path, manifest: dict) -> Path:
    for candidate in sorted(cache_dir.glob("*/manifest.json")):
        if json.loads(candidate.read_text()).get("cache_key") == manifest.get("cache_key"):
            return candidate.parent
    raise FileNotFoundError(f"no bundle with cache_key {manifest.get('cache_key')} in {cache_dir}")


def _pipelined(
    runtimes: list,
    preprocess: Preprocess,
    blobs: list[bytes],
    batch_size: int,
    decode_threads: int,
    seconds: float,
    max_images: int,
) -> CeilingPoint:
    """One lane per runtime instance, as the server runs one batcher per instance; all lanes
    share one pool of `decode_threads` decoders."""
    order = itertools.count()

    with ThreadPoolExecutor(decode_threads) as decoders:

        def fill(batch: np.ndarray) -> np.ndarray:  # (B, C, H, W)
            picks = [next(order) % len(blobs) for _ in range(batch_size)]
            rows = decoders.map(
                lambda row: decode_image(blobs[picks[row]], preprocess, 1 << 40, batch[row]),
                range(batch_size),
            )
            list(rows)
            return batch

        def lane(runtime, stop_at: float, cap: int) -> int:
            buffers = [
                np.empty((batch_size, *preprocess.input_shape), np.float32) for _ in range(2)
            ]
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

        warmup = np.empty((batch_size, *preprocess.input_shape), np.float32)
        for runtime in runtimes:  # first calls at a new batch size allocate
            runtime.run(fill(warmup))
        with ThreadPoolExecutor(len(runtimes)) as lanes:
            started = time.perf_counter()
            cap = -(-max_images // len(runtimes))
            counts = list(lanes.map(lambda rt: lane(rt, started + seconds, cap), runtimes))
            elapsed = time.perf_counter() - started
    return CeilingPoint(batch_size, sum(counts), elapsed)


def _decode_ms(blobs: list[bytes], preprocess: Preprocess, max_pixels: int, samples: int) -> float:
    out = np.empty(preprocess.input_shape, np.float32)  # (C, H, W)
    timings = []
    for index in range(samples):
        started = time.perf_counter()
        decode_image(blobs[index % len(blobs)], preprocess, max_pixels, out)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def _engine_ms(runtime, preprocess: Preprocess, samples: int) -> float:
    batch = np.random.default_rng(0).standard_normal((1, *preprocess.input_shape), np.float32)
    runtime.run(batch)
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        runtime.run(batch)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000

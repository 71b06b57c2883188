"""Benchmark (not a test): eager PyTorch vs TorchScript vs ONNX Runtime on one model.

Rounds interleave every (runtime, batch size) pair so that machine noise hits all of them alike;
the run stops after `--rounds` rounds or when `--budget` seconds are spent, whichever is first.
Prints p50 latency, img/s, the speed-up over eager, and the fraction of the machine's matmul peak
(a large sgemm measured in the same run) that the model's mult-adds reach.

    .venv/bin/python bench/runtimes.py                # resnet18 at 224², batches 1, 8, 32
    .venv/bin/python bench/runtimes.py --quick        # seconds-long smoke run
"""

from __future__ import annotations

import os

# Runtimes take turns on the same cores: idle thread pools must sleep, not spin, or each one
# steals the CPU from the next (set before torch loads its OpenMP runtime).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from models.export import export_bundle, load_bundle
from models.registry import create_model
from models.summary import summarize
from service.runtimes import load_runtime

Infer = Callable[[np.ndarray], np.ndarray]
RUNTIMES = ("eager", "torchscript", "onnx")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--input", default="3,224,224", help="C,H,W without batch")
    parser.add_argument("--batches", default="1,8,32", help="comma-separated batch sizes")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (max)")
    parser.add_argument("--calls", type=int, default=3, help="timed calls per pair per round")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds for all rounds")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/bench-bundles"))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: resnet_tiny at 32², batches 1,4, one round of one call",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.input, args.batches, args.rounds, args.calls = (
            "resnet_tiny", "3,32,32", "1,4", 1, 1,
        )  # fmt: skip
    args.input = tuple(int(size) for size in args.input.split(","))
    args.batches = [int(size) for size in args.batches.split(",")]
    return args


def matmul_gflops(size: int = 2048, calls: int = 5) -> float:
    """Best sgemm throughput over a few calls: the machine's practical fp32 peak."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def build_runners(args: argparse.Namespace) -> dict[str, Infer]:
    torch.manual_seed(0)  # the bundles are "random-init, seed 0" too
    eager = create_model(args.model).eval()

    def run_eager(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return eager(torch.from_numpy(batch)).numpy()

    runners: dict[str, Infer] = {"eager": run_eager}
    for fmt, options in (
        ("torchscript", {}),
        ("onnx", {"intra_op_threads": args.threads, "allow_spinning": False}),
    ):
        path = export_bundle(
            args.model,
            fmt=fmt,
            cache_dir=args.cache_dir,
            input_size=args.input,
            max_batch=max(args.batches),
            progress=lambda message: print(f"  [export] {message}", flush=True),
        )
        runtime = load_runtime(load_bundle(path), "cpu", **options)
        runtime.warmup()
        runners[fmt] = runtime.run
    return runners


def measure(
    args: argparse.Namespace, runners: dict[str, Infer]
) -> dict[tuple[str, int], list[float]]:
    batches = {
        size: np.random.default_rng(size).standard_normal((size, *args.input), dtype=np.float32)
        for size in args.batches
    }
    for run in runners.values():  # first-call allocations stay out of the timings
        for batch in batches.values():
            run(batch)
    latencies: dict[tuple[str, int], list[float]] = defaultdict(list)
    deadline = time.perf_counter() + args.budget
    for round_index in range(args.rounds):
        order = RUNTIMES[round_index % 3 :] + RUNTIMES[: round_index % 3]
        for size, batch in batches.items():
            for name in order:
                for _ in range(args.calls):
                    start = time.perf_counter()
                    runners[name](batch)
                    latencies[name, size].append(time.perf_counter() - start)
        print(f"  round {round_index + 1}/{args.rounds} done", flush=True)
        if time.perf_counter() > deadline:
            print(f"  time budget of {args.budget:.0f}s reached", flush=True)
            break
    return latencies


def report(
    args: argparse.Namespace,
    latencies: dict[tuple[str, int], list[float]],
    mult_adds: int,
    peak_gflops: float,
) -> None:
    shape = "x".join(map(str, args.input))
    print(
        f"\n{args.model} at {shape}, {args.threads} threads, {mult_adds / 1e9:.2f} G mult-adds/img,"
        f" sgemm peak {peak_gflops:.1f} GFLOP/s"
    )
    print(f"{'runtime':<12}{'batch':>6}{'p50 ms':>10}{'img/s':>9}{'vs eager':>10}{'of peak':>9}")
    for size in args.batches:
        eager_rate = size / statistics.median(latencies["eager", size])
        for name in RUNTIMES:
            p50 = statistics.median(latencies[name, size])
            rate = size / p50
            peak_share = rate * 2 * mult_adds / 1e9 / peak_gflops
            print(f"{name:<12}{size:>6}{p50 * 1e3:>10.1f}{rate:>9.1f}"
                  f"{rate / eager_rate:>9.2f}x{peak_share:>8.1%}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print("measuring sgemm peak", flush=True)
    peak_before = matmul_gflops()
    print("preparing runtimes", flush=True)
    runners = build_runners(args)
    mult_adds = summarize(create_model(args.model), args.input).total_mult_adds
    latencies = measure(args, runners)
    peak = max(peak_before, matmul_gflops())
    report(args, latencies, mult_adds, peak)


if __name__ == "__main__":
    main()

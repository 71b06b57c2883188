"""int8 against fp32, served side by side by one blockserve process: resnet18 throughput at c=32
in alternating rounds, digits accuracy over HTTP on its held-out test split, and the export time
of each bundle.

    .venv/bin/python -m bench.precision [--rounds 6] [--seconds 5]

The server holds four models: resnet18 and digits at fp32 and the same two at `precision: int8`
(resnet18 calibrated on a seeded image folder, digits on its training data), with the same
batching. Load is wrk's (`bench.serving.load`) on 127.0.0.1, bounded by --seconds per round and
a request cap. Targets: resnet18 int8 >= 1.8 x fp32 img/s; digits int8 accuracy >= 95 % and
within 0.5 point of fp32. A benchmark, never a test: it prints PASS/FAIL and asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml
from PIL import Image

from bench.serving.bodies import write_bodies
from bench.serving.images import encode, write_corpus
from bench.serving.load import run_wrk
from bench.serving.paired import HeadToHead, alternate
from bench.serving.processes import free_port, running
from bench.serving.servers import PROJECT_PYTHON, REPO, blockserve_launch
from models.digits import load_digits_split

WORK = REPO / "bench" / "work" / "precision"
CONCURRENCY = 32
MIN_SPEEDUP = 1.8
MIN_ACCURACY = 0.95
MAX_ACCURACY_DROP = 0.005
CALIBRATION = {"samples": 128, "held_out": 64}
BATCHING = {"max_batch_size": 16, "max_delay_ms": 5, "max_queue": 256}
DIGITS_BATCH = 60  # images per accuracy request


@dataclass(frozen=True)
class Verdict:
    passed: bool
    line: str

    def __str__(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.line}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds (6)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per round (5)")
    parser.add_argument(
        "--skip-export-times", action="store_true", help="do not time fresh exports"
    )
    args = parser.parse_args(argv)
    calibration_dir = WORK / "calibration"
    calibration_images = write_corpus(calibration_dir, "rgb224", _calibration_count(), seed=0)
    bodies = write_bodies(write_corpus(WORK / "load", "rgb224", 64, seed=1), "raw", WORK / "bodies")
    config = _write_config(calibration_dir)
    print(f"calibration: {len(calibration_images)} images in {calibration_dir}", flush=True)
    exports = {} if args.skip_export_times else _export_times(calibration_dir)
    port = free_port()
    with running("blockserve", blockserve_launch(config, port, REPO), WORK / "server.log", 900):
        base = f"http://127.0.0.1:{port}"
        resnet = _resnet_rounds(base, bodies, args.rounds, args.seconds)
        accuracy = {name: _digits_accuracy(base, name) for name in ("digits", "digits-int8")}
    _print_report(resnet, accuracy, exports)
    return 0


def _calibration_count() -> int:
    return CALIBRATION["samples"] + CALIBRATION["held_out"]


def _write_config(calibration_dir: Path) -> Path:
    resnet18 = {"arch": "resnet18", "batching": BATCHING, "top_k": 5}
    digits = {
        "arch": "resnet_digits",
        "weights": "${BLOCKSERVE_HOME}/digits/digits.safetensors",
        "weights_recipe": "digits",
        "batching": {"max_batch_size": 64, "max_delay_ms": 2, "max_queue": 1024},
        "preprocess": {"channels": "gray", "resize": 8, "crop": 8, "mean": [0.5], "std": [0.5]},
        "labels": [str(digit) for digit in range(10)],
    }
    int8 = {"precision": "int8"}
    models = [
        {"name": "resnet18", **resnet18},
        {
            "name": "resnet18-int8",
            **resnet18,
            **int8,
            "calibration": {"images": str(calibration_dir), **CALIBRATION},
        },
        {"name": "digits", **digits},
        {"name": "digits-int8", **digits, **int8},
    ]
    server = {"cache_dir": str(WORK / "bundles"), "grpc": {"enabled": False}}
    path = WORK / "config.yaml"
    path.write_text(yaml.safe_dump({"server": server, "models": models}, sort_keys=False))
    return path


def _export_times(calibration_dir: Path) -> dict[str, float]:
    """Seconds of a fresh `blockserve export resnet18` per precision, into an empty cache."""
    int8 = ["--precision", "int8", "--calibration-images", str(calibration_dir)]
    times = {}
    for precision, extra in (("fp32", []), ("int8", int8)):
        with tempfile.TemporaryDirectory(prefix="blockserve-export-") as out:
            command = [str(PROJECT_PYTHON), "-m", "service.cli", "export", "resnet18"]
            started = time.perf_counter()
            subprocess.run(
                [*command, "--out", out, *extra],
                check=True,
                cwd=REPO,
                capture_output=True,
                timeout=600,
            )
            times[precision] = time.perf_counter() - started
        print(f"export resnet18 {precision}: {times[precision]:.1f} s", flush=True)
    return times


def _resnet_rounds(base: str, bodies: Path, rounds: int, seconds: float) -> HeadToHead:
    def measure(model: str) -> float:
        result = run_wrk(
            f"{base}/predict?model={model}",
            bodies,
            concurrency=CONCURRENCY,
            seconds=seconds,
            max_requests=100_000,
            warmup_s=1.0,
        )
        print(
            f"  {model}: {result.throughput:.1f} img/s, p50 {result.p50_ms:.0f} ms, "
            f"{result.failed} errors",
            flush=True,
        )
        return result.throughput

    fp32, int8 = alternate(lambda: measure("resnet18"), lambda: measure("resnet18-int8"), rounds)
    return HeadToHead("int8-resnet18", "resnet18 fp32", "resnet18 int8", "img/s", fp32, int8)


def _digits_accuracy(base: str, model: str) -> float:
    """Top-1 accuracy of `model` over HTTP on the digits test split, sent as PNG files."""
    split = load_digits_split()
    predicted: list[int] = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for start in range(0, len(split.test_images), DIGITS_BATCH):
            files = [
                ("files", (f"{index}.png", encode(Image.fromarray(image, "L"), "PNG"), "image/png"))
                for index, image in enumerate(split.test_images[start : start + DIGITS_BATCH])
            ]
            response = client.post(f"/models/{model}/predict", params={"top_k": 1}, files=files)
            response.raise_for_status()
            predicted += [int(answer[0]["label"]) for answer in response.json()["predictions"]]
    return float(np.mean(np.array(predicted) == split.test_labels))


def _print_report(resnet: HeadToHead, accuracy: dict[str, float], exports: dict[str, Any]) -> None:
    rounds = ", ".join(f"{ratio:.2f}" for ratio in resnet.round_ratios())
    int8, fp32 = accuracy["digits-int8"], accuracy["digits"]
    verdicts = [
        Verdict(
            resnet.ratio >= MIN_SPEEDUP,
            f"resnet18 int8 img/s at c={CONCURRENCY} >= {MIN_SPEEDUP} x fp32: "
            f"{resnet.b_mean:.1f} / {resnet.a_mean:.1f} = {resnet.ratio:.2f}x "
            f"({len(resnet.a_values)} rounds: {rounds})",
        ),
        Verdict(
            int8 >= MIN_ACCURACY and abs(int8 - fp32) <= MAX_ACCURACY_DROP,
            f"digits int8 accuracy over HTTP >= {MIN_ACCURACY:.0%} and within "
            f"{MAX_ACCURACY_DROP * 100:.1f} point of fp32: int8 {int8:.2%}, fp32 {fp32:.2%}",
        ),
    ]
    print("\nTargets")
    for verdict in verdicts:
        print(f"  {verdict}")
    if exports:
        print(
            f"Export of resnet18, fresh cache: fp32 {exports['fp32']:.1f} s, "
            f"int8 {exports['int8']:.1f} s (calibration {CALIBRATION['samples']} images, "
            f"verification {CALIBRATION['held_out']})"
        )


if __name__ == "__main__":
    sys.exit(main())

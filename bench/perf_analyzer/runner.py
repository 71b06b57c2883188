"""One perf_analyzer run: its arguments, the script that runs NVIDIA's binary, its outcome.

A run measures one concurrency level: perf_analyzer ends a whole range at the first level
that does not settle, and on a shared 2-core machine one noisy level should cost only itself.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.perf_analyzer.measurements import Level, parse_csv

PROTOCOLS = ("http", "grpc")  # gRPC listens on the HTTP port + 1 on both servers


@dataclass(frozen=True)
class Case:
    server: str  # "blockserve" or "triton"
    model: str
    protocol: str  # PROTOCOLS
    concurrency: int


@dataclass(frozen=True)
class Pace:
    measurement_interval_ms: int
    max_trials: int  # windows before perf_analyzer gives up on a level settling
    stability_percent: int  # a level settles once 3 windows agree within this
    timeout_s: float  # the whole perf_analyzer process


@dataclass(frozen=True)
class Tool:
    script: Path  # ../shared/tools/perf_analyzer.sh: fetches the binary into pa_home once
    pa_home: Path
    pace: Pace


@dataclass(frozen=True)
class Outcome:
    case: Case
    level: Level | None
    error: str | None = None  # why there is no level, in perf_analyzer's words


def arguments(case: Case, http_port: int, pace: Pace, csv_path: Path) -> list[str]:
    port = http_port if case.protocol == "http" else http_port + 1
    return [
        "-m", case.model, "-u", f"127.0.0.1:{port}", "-i", case.protocol,
        "--concurrency-range", f"{case.concurrency}:{case.concurrency}",
        "--measurement-interval", str(pace.measurement_interval_ms),
        "--max-trials", str(pace.max_trials),
        "--stability-percentage", str(pace.stability_percent),
        "-f", str(csv_path),
    ]  # fmt: skip


def run_case(tool: Tool, case: Case, http_port: int, csv_path: Path) -> Outcome:
    """perf_analyzer's measurement of `case`, or why there is none."""
    pace = tool.pace
    csv_path.unlink(missing_ok=True)
    command = ["bash", str(tool.script), *arguments(case, http_port, pace, csv_path)]
    env = {**os.environ, "PA_HOME": str(tool.pa_home)}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=pace.timeout_s, env=env
        )
    except subprocess.TimeoutExpired:
        return Outcome(case, None, f"perf_analyzer did not finish within {pace.timeout_s:.0f} s")
    levels = parse_csv(csv_path.read_text()) if csv_path.exists() else []
    if done.returncode != 0 or len(levels) != 1:
        return Outcome(case, None, failure(done.stdout + "\n" + done.stderr, done.returncode))
    return Outcome(case, levels[0])


def failure(output: str, returncode: int) -> str:
    """perf_analyzer's own error lines (it prints them on either stream), else its last lines."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "failed" in line.lower()]
    return f"exit {returncode}: " + " / ".join(errors[:3] or lines[-3:] or ["no output"])

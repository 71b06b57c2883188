"""NVIDIA's unmodified perf_analyzer measures blockserve over both protocols: it runs a short,
bounded measurement to completion and reports a throughput for every concurrency level.

perf_analyzer needs a newer glibc than these machines have: ../shared/tools/perf_analyzer.sh
runs the stock binary with Debian trixie's loader (downloaded once into .cache/perf-analyzer)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [pytest.mark.clients, pytest.mark.slow]

PROJECT = Path(__file__).resolve().parents[2]
PERF_ANALYZER = PROJECT.parent / "shared" / "tools" / "perf_analyzer.sh"
PA_HOME = PROJECT / ".cache" / "perf-analyzer"
RUN_TIMEOUT_S = 600  # the first run downloads the wheel and the trixie libraries
CONCURRENCY = (1, 2)
# Bounded: two concurrency levels, half-second windows, any spread counted as stable.
MEASUREMENT = [
    "--measurement-interval", "500",
    "--concurrency-range", f"{CONCURRENCY[0]}:{CONCURRENCY[-1]}",
    "--stability-percentage", "100",
]  # fmt: skip
THROUGHPUT = re.compile(r"Concurrency: (\d+), throughput: ([\d.]+) infer/sec")

MODES = {
    "http": ["-i", "http"],
    "grpc": ["-i", "grpc"],
    "grpc-streaming": ["-i", "grpc", "--streaming"],
    "http-async": ["-i", "http", "-a"],
    "grpc-async": ["-i", "grpc", "-a"],
}


@pytest.fixture(scope="session")
def perf_analyzer(blockserve) -> Callable[[str], subprocess.CompletedProcess]:
    """Run perf_analyzer on the digits model in one of MODES (each mode once per session)."""
    if not PERF_ANALYZER.is_file():
        pytest.skip(f"{PERF_ANALYZER} is absent (CI keeps ../shared beside the clone)")
    environment = {
        **os.environ,
        "PA_HOME": str(PA_HOME),
        "PIP": str(Path(sys.executable).with_name("pip")),
    }
    runs: dict[str, subprocess.CompletedProcess] = {}

    def run(mode: str) -> subprocess.CompletedProcess:
        if mode not in runs:
            arguments = MODES[mode]
            address = blockserve.grpc_address if "grpc" in arguments else blockserve.http_address
            command = ["bash", str(PERF_ANALYZER), "-m", "digits", "-u", address, *arguments]
            runs[mode] = subprocess.run(
                [*command, *MEASUREMENT],
                capture_output=True,
                text=True,
                env=environment,
                timeout=RUN_TIMEOUT_S,
            )
        return runs[mode]

    return run


@pytest.mark.parametrize("mode", MODES)
def test_perf_analyzer_measures_every_concurrency(mode: str, perf_analyzer) -> None:
    run = perf_analyzer(mode)
    assert run.returncode == 0, f"exit {run.returncode}:\n{run.stdout}\n{run.stderr[-3000:]}"
    measured = {int(level): float(rate) for level, rate in THROUGHPUT.findall(run.stdout)}
    assert sorted(measured) == list(CONCURRENCY), run.stdout
    assert all(rate > 0 for rate in measured.values()), run.stdout


@pytest.mark.parametrize("mode", ["http", "grpc"])
def test_perf_analyzer_reads_server_side_statistics(mode: str, perf_analyzer) -> None:
    """With `statistics` in the server's extensions, perf_analyzer adds the server's own
    breakdown (inference count, queue and compute times) to every measurement."""
    run = perf_analyzer(mode)
    assert run.returncode == 0, f"exit {run.returncode}:\n{run.stdout}\n{run.stderr[-3000:]}"
    assert run.stdout.count("  Server: ") == len(CONCURRENCY), run.stdout
    assert "Inference count:" in run.stdout, run.stdout

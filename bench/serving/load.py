"""Closed-loop HTTP load from a separate, compiled process: wrk with a Lua script.

Every run is bounded in time (`-d`) and in count (the script stops each thread after
`max_requests`); the subprocess itself gets a hard timeout on top.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("post_bodies.lua")
APT_PACKAGES = ("wrk",)


class LoadError(RuntimeError):
    """wrk is missing, failed, or printed no result."""


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    seconds: float
    requests: int  # answered requests, any status
    ok: int  # 2xx
    rejected: int  # 503: deliberate load shedding
    failed: int  # any other status, plus socket errors and timeouts
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    statuses: dict[str, int]
    capped: bool  # the request cap ended the run early: throughput is then a lower bound

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return self.ok / self.seconds if self.seconds else 0.0


def ensure_wrk() -> str:
    """Path of `wrk`, installing the Debian package when it is missing (needs root)."""
    found = shutil.which("wrk")
    if found:
        return found
    command = ["apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES]
    print(f"wrk not found; running: {' '.join(command)}", flush=True)
    try:
        subprocess.run(command, check=True, timeout=600)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        raise LoadError(f"cannot install wrk ({error}); run: apt-get install -y wrk") from None
    found = shutil.which("wrk")
    if not found:
        raise LoadError("apt-get installed wrk but it is not on PATH")
    return found


def run_wrk(
    url: str,
    body_list: Path,
    *,
    concurrency: int,
    seconds: float,
    max_requests: int,
    warmup_s: float = 0.0,
    threads: int = 1,
    timeout_s: float = 10.0,
) -> LoadResult:
    """`concurrency` connections kept busy for `warmup_s` + `seconds`; answers count from the
    end of the warm-up, so the measured window is the steady state (latency percentiles are
    wrk's, over the whole run).

    `max_requests` is a safety cap, set well above what the run can reach: wrk keeps timing the
    full `seconds` after a capped thread stops, so a capped run understates throughput.
    """
    if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise LoadError(f"load is only ever sent to loopback, not {url}")
    threads = max(1, min(threads, concurrency))
    per_thread = -(-max_requests // threads)
    command = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{max(1, round(warmup_s + seconds))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        str(body_list),
        str(per_thread),
        str(warmup_s),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=warmup_s + seconds + timeout_s + 30
        )
    except subprocess.TimeoutExpired:
        raise LoadError(f"wrk did not finish within {seconds + timeout_s + 30:.0f} s") from None
    return parse_wrk_output(
        done.stdout,
        concurrency,
        max_requests=per_thread * threads,
        warmup_s=warmup_s,
        stderr=done.stderr,
    )


def parse_wrk_output(
    stdout: str, concurrency: int, *, max_requests: int, warmup_s: float = 0.0, stderr: str = ""
) -> LoadResult:
    """The script's `RESULT {...}` line -> LoadResult over the steady window after warm-up."""
    line = next((ln for ln in stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise LoadError(f"wrk printed no RESULT line:\n{stdout}\n{stderr}".rstrip())
    raw = json.loads(line.removeprefix("RESULT "))
    statuses = {str(code): int(count) for code, count in raw["steady_statuses"].items()}
    ok = sum(count for code, count in statuses.items() if code.startswith("2"))
    rejected = statuses.get("503", 0)
    socket_errors = sum(raw["socket_errors"].values())
    latency = raw["latency_us"]
    return LoadResult(
        concurrency=concurrency,
        seconds=raw["duration_us"] / 1e6 - warmup_s,
        requests=raw["requests"],
        ok=ok,
        rejected=rejected,
        failed=sum(statuses.values()) - ok - rejected + socket_errors,
        p50_ms=latency["p50"] / 1000,
        p95_ms=latency["p95"] / 1000,
        p99_ms=latency["p99"] / 1000,
        mean_ms=latency["mean"] / 1000,
        max_ms=latency["max"] / 1000,
        statuses=statuses,
        capped=raw["requests"] >= max_requests,
    )

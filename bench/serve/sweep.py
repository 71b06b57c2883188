"""The sweep: each server alone, every selected workload, body kind and concurrency."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bench.serve.environment import PEERS_PYTHON
from bench.serve.loads import READY_TIMEOUT_S, Bodies, LoadSpec, load_spec
from bench.serve.options import Options
from bench.serving.load import LoadError
from bench.serving.processes import ServerFailed, free_port_block, running
from bench.serving.profile import describe, find_py_spy, start_recording, summarize
from bench.serving.results import Point, RunResults, ServerInfo
from bench.serving.scrape import batch_totals, mean_batch_size
from bench.serving.servers import PORTS_PER_SERVER, SERVERS, ServerCase, Settings
from bench.serving.workloads import WORKLOADS

PROFILED = ("blockserve", "resnet18-224", 32)  # (server, workload, concurrency) --profile samples
PROFILE_RAW = Path("profile") / "blockserve-resnet18-224-c32.raw"
SERVER_ERRORS = (ServerFailed, LoadError, subprocess.CalledProcessError, OSError)


def sweep(
    options: Options, settings: Settings, bodies: Bodies, results: RunResults, deadline: float
) -> None:
    for name in options.servers:
        if time.monotonic() > deadline:
            print(f"== {name}: skipped, --max-minutes {options.max_minutes} reached", flush=True)
            return
        port = free_port_block(PORTS_PER_SERVER)
        case = SERVERS[name](settings, port)
        results.servers[name] = ServerInfo(case.label, case.peer, case.notes)
        if not any(e.workload in options.workloads for e in case.endpoints):
            continue
        try:
            _measure_server(case, port, options, bodies, results, deadline)
        except SERVER_ERRORS as error:
            results.servers[name].error = str(error)
            print(f"   {name} FAILED: {error}", flush=True)


def _measure_server(
    case: ServerCase,
    port: int,
    options: Options,
    bodies: Bodies,
    results: RunResults,
    deadline: float,
) -> None:
    print(f"== {case.label}  ({case.notes})", flush=True)
    log_path = options.work / "logs" / f"{case.name}.log"
    metrics_url = f"http://127.0.0.1:{port}{case.metrics_path}" if case.metrics_path else None
    with running(case.name, case.launch, log_path, READY_TIMEOUT_S) as server:
        for endpoint in case.endpoints:
            if endpoint.workload not in options.workloads:
                continue
            model = WORKLOADS[endpoint.workload].model
            for body in endpoint.bodies:
                spec = load_spec(
                    server, port, endpoint, body, bodies,
                    max_requests=options.max_requests, warmup_s=options.warmup_s,
                )  # fmt: skip
                for concurrency in options.concurrency:
                    if time.monotonic() > deadline:
                        return
                    before = batch_totals(metrics_url, model) if metrics_url else None
                    load = spec.run(concurrency, options.duration_s)
                    after = batch_totals(metrics_url, model) if metrics_url else None
                    mean_batch = mean_batch_size(before, after) if before and after else None
                    point = Point(
                        case.name, endpoint.workload, body, load, mean_batch, os.getloadavg()[0]
                    )
                    results.points.append(point)
                    _print_point(point)
                    if options.profile and (case.name, endpoint.workload, concurrency) == PROFILED:
                        results.profile = _profiled_run(server.pid, spec, concurrency, options)


def _print_point(point: Point) -> None:
    load, batch = point.load, point.mean_batch
    print(
        f"   {point.workload:14} {point.body:15} c={point.concurrency:<3} "
        f"{point.throughput:8.1f} {WORKLOADS[point.workload].unit}  p50 {load.p50_ms:7.1f}  "
        f"p95 {load.p95_ms:7.1f}  p99 {load.p99_ms:7.1f} ms  503s {load.rejected}  "
        f"errors {load.failed}  batch {'–' if batch is None else f'{batch:.2f}'}",
        flush=True,
    )


def _profiled_run(pid: int, spec: LoadSpec, concurrency: int, options: Options) -> dict | None:
    """One more run of the same load under py-spy; its numbers are not reported (sampling
    slows the server), only where the threads spent their time."""
    py_spy = find_py_spy(PEERS_PYTHON)
    if py_spy is None:
        print("   --profile: py-spy not found (bench/.venv-peers or PATH)", flush=True)
        return None
    raw = options.work / PROFILE_RAW
    seconds = max(1.0, options.duration_s - 1.0)  # inside the measured window
    recorder = start_recording(py_spy, pid, seconds, raw)
    spec.run(concurrency, options.duration_s)
    _, stderr = recorder.communicate(timeout=120)
    if recorder.returncode != 0 or not raw.exists():
        print(f"   py-spy failed: {stderr.decode(errors='replace').strip()}", flush=True)
        return None
    summary = summarize(raw)
    print("   profile (py-spy, share of samples per thread group):", flush=True)
    for line in describe(summary):
        print(f"     {line}", flush=True)
    return summary

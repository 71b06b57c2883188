"""`python -m bench.perf_analyzer`: both servers up, perf_analyzer against each in turn."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import bench.perf_analyzer
from bench.perf_analyzer import report
from bench.perf_analyzer.runner import PROTOCOLS, Case, Outcome, Pace, Tool, run_case
from bench.serve.environment import PEERS_PYTHON
from bench.serve.options import DOCS
from bench.serve.sweep import SERVER_ERRORS
from bench.serving.docs import write_section
from bench.serving.processes import RunningServer, free_port_block, paused, running, wait_ready
from bench.serving.servers import (
    PORTS_PER_SERVER,
    REPO,
    SERVERS,
    ServerCase,
    blockserve_with_grpc,
    settings_for,
)

MODELS = ("digits", "resnet18")
READY_TIMEOUT_S = 600  # a first start exports resnet18


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.perf_analyzer",
        description=bench.perf_analyzer.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    p.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated")
    p.add_argument("--concurrency", default="1,16", help="comma-separated levels")
    p.add_argument("--measurement-interval", type=int, default=3000, help="ms per window")
    p.add_argument("--max-trials", type=int, default=8, help="windows per level at most")
    p.add_argument(
        "--stability-percentage", type=int, default=25,
        help="a level counts once 3 windows agree within this (perf_analyzer's default: 10)",
    )  # fmt: skip
    p.add_argument(
        "--attempts", type=int, default=2,
        help="perf_analyzer runs per level at most (again when one does not settle or fails)",
    )  # fmt: skip
    p.add_argument("--timeout", type=float, default=600.0, help="s per perf_analyzer run")
    p.add_argument(
        "--config",
        type=Path,
        default=REPO / "service" / "configs" / "default.yaml",
        help="blockserve's config (gRPC is turned on at the HTTP port + 1)",
    )
    p.add_argument("--work", type=Path, default=REPO / "bench" / "work", help="scratch dir")
    p.add_argument(
        "--shared-peers", type=Path, default=REPO.parent / "shared" / "peers",
        help="Triton's start / stop scripts",
    )  # fmt: skip
    p.add_argument(
        "--perf-analyzer", type=Path,
        default=REPO.parent / "shared" / "tools" / "perf_analyzer.sh",
        help="the script that runs perf_analyzer",
    )  # fmt: skip
    p.add_argument("--pa-home", type=Path, help="perf_analyzer's download (default WORK/pa-home)")
    p.add_argument("--write-docs", action="store_true", help=f"update {DOCS.relative_to(REPO)}")
    return p


def _names(text: str, known: tuple[str, ...], p: argparse.ArgumentParser) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        p.error(f"unknown {unknown or 'empty list'}; known: {', '.join(known)}")
    return names


@dataclass
class Side:
    """One server under test: how it is launched, where, and whether it came up."""

    case: ServerCase
    port: int
    server: RunningServer | None = None
    error: str | None = None


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    models = _names(args.models, MODELS, p)
    protocols = _names(args.protocols, PROTOCOLS, p)
    try:
        levels = [int(level) for level in args.concurrency.split(",")]
    except ValueError:
        p.error(f"--concurrency takes comma-separated integers, not {args.concurrency!r}")
    if not levels or min(levels) < 1:
        p.error(f"--concurrency levels must be >= 1, got {args.concurrency!r}")
    if args.attempts < 1:
        p.error(f"--attempts must be >= 1, got {args.attempts}")
    pace = Pace(
        args.measurement_interval,
        args.max_trials,
        args.stability_percentage,
        args.timeout,
    )
    work = args.work.resolve()
    tool = Tool(args.perf_analyzer.resolve(), (args.pa_home or work / "pa-home").resolve(), pace)
    settings = settings_for(args.config.resolve(), work, args.shared_peers.resolve(), PEERS_PYTHON)
    factories = {report.OURS: blockserve_with_grpc, report.REFERENCE: SERVERS[report.REFERENCE]}
    started, load_start = datetime.now(UTC).isoformat(timespec="seconds"), os.getloadavg()[0]
    csv_dir = work / "perf_analyzer" / started.replace(":", "")
    csv_dir.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    with contextlib.ExitStack() as stack:
        sides: dict[str, Side] = {}
        for name, factory in factories.items():  # each takes ports free once the previous is up
            port = free_port_block(PORTS_PER_SERVER)
            sides[name] = _start(stack, factory(settings, port), port, models, work)
        points = [(m, proto, c) for m in models for proto in protocols for c in levels]
        for index, (model, protocol, concurrency) in enumerate(points):
            order = [report.REFERENCE, report.OURS]
            for name in order if index % 2 == 0 else reversed(order):
                case = Case(name, model, protocol, concurrency)
                outcome = _measure(case, sides, tool, csv_dir, args.attempts)
                outcomes.append(outcome)
                _print(outcome)
    info = report.RunInfo(
        started=started,
        command=" ".join([".venv/bin/python -m bench.perf_analyzer", *sys.argv[1:]]),
        cores=os.cpu_count() or 0,
        load_start=load_start,
        load_end=os.getloadavg()[0],
        perf_analyzer=_version(tool.pa_home),
        reference_label=sides[report.REFERENCE].case.label,
        setups=[f"{side.case.label}: {side.case.notes}" for side in sides.values()],
        pace=pace,
        attempts=args.attempts,
    )
    print(f"\n{report.table(outcomes, info.reference_label)}")
    print(f"\nload average (1 min): {info.load_start:.2f} at start, {info.load_end:.2f} at end")
    print(f"CSV reports: {csv_dir}")
    if args.write_docs:
        write_section(DOCS, report.SECTION, report.section_body(outcomes, info))
        print(f"wrote {DOCS.relative_to(REPO)} ({report.SECTION.heading[3:]} section)")
    return 0


def _start(
    stack: contextlib.ExitStack, case: ServerCase, port: int, models: list[str], work: Path
) -> Side:
    """The server up and ready with every model (stopped when `stack` closes), or why not."""
    side = Side(case, port)
    log_path = work / "logs" / f"{case.name}-perf-analyzer.log"
    try:
        side.server = stack.enter_context(
            running(case.name, case.launch, log_path, READY_TIMEOUT_S)
        )
        for model in models:
            url = f"http://127.0.0.1:{side.port}/v2/models/{model}/ready"
            wait_ready(side.server, url, None, READY_TIMEOUT_S)
    except SERVER_ERRORS as error:
        print(f"{case.name} did not start: {error}", flush=True)
        side.error = f"did not start: {str(error).splitlines()[0]}"
    return side


def _measure(
    case: Case, sides: dict[str, Side], tool: Tool, csv_dir: Path, attempts: int
) -> Outcome:
    """perf_analyzer against one server, the other paused unless it cannot be (Triton); up to
    `attempts` runs, the first that gives a measurement counts."""
    side = sides[case.server]
    if side.error is not None or side.server is None:
        return Outcome(case, None, side.error or "not started")
    others = [
        other.server
        for name, other in sides.items()
        if name != case.server and other.server is not None and other.case.pausable
    ]
    csv_path = csv_dir / f"{case.server}-{case.model}-{case.protocol}-c{case.concurrency}.csv"
    with paused(*others):
        outcome = run_case(tool, case, side.port, csv_path)
        for _ in range(attempts - 1):
            if outcome.level is not None:
                break
            where = f"{case.server} {case.model} {case.protocol} c={case.concurrency}"
            print(f"   {where}: {outcome.error}; once more", flush=True)
            outcome = run_case(tool, case, side.port, csv_path)
    return outcome


def _print(outcome: Outcome) -> None:
    case, level = outcome.case, outcome.level
    measured = (
        f"{level.infer_per_s:8.1f} infer/s  p50 {level.p50_us / 1000:6.1f} ms  "
        f"p99 {level.p99_us / 1000:6.1f} ms"
        if level
        else f"no measurement: {outcome.error}"
    )
    print(
        f"{case.server:10} {case.model:8} {case.protocol:4} c={case.concurrency:<3} {measured}",
        flush=True,
    )


def _version(pa_home: Path) -> str:
    found = sorted((pa_home / "wheel").glob("perf_analyzer-*.dist-info"))
    return (
        found[-1].name.removeprefix("perf_analyzer-").removesuffix(".dist-info") if found else "?"
    )

"""The run's options: parsed from the command line once, into one frozen dataclass."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import bench.serve
from bench.serving.servers import REPO, SERVERS
from bench.serving.targets import GROUPS
from bench.serving.workloads import WORKLOADS

DOCS = REPO / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Pace:
    duration_s: float
    warmup_s: float
    ceiling_seconds: float
    latency_samples: int
    rounds: int
    round_seconds: float


QUICK = Pace(2.0, 1.0, 1.0, 20, 2, 1.0)
FULL = Pace(10.0, 3.0, 5.0, 100, 4, 5.0)


@dataclass(frozen=True)
class Options:
    quick: bool
    targets: tuple[str, ...]  # targets.GROUPS keys
    servers: tuple[str, ...]  # in sweep order
    workloads: tuple[str, ...]
    concurrency: tuple[int, ...]
    duration_s: float
    warmup_s: float
    max_requests: int
    max_minutes: float
    rounds: int
    round_seconds: float
    ceiling_seconds: float
    latency_samples: int
    config: Path
    peer_batch_delay_ms: float | None
    work: Path
    shared_peers: Path
    write_docs: bool
    profile: bool
    report: Path | None


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _union(groups: list[str], pick) -> tuple:
    return tuple(dict.fromkeys(name for group in groups for name in pick(GROUPS[group])))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.serve",
        description=bench.serve.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="seconds-long points (smoke run)")
    p.add_argument(
        "--targets",
        default="all",
        help=f"comma-separated target groups, or all: {', '.join(GROUPS)}. Picks the default "
        "servers and workloads and which targets are measured head to head",
    )
    p.add_argument("--servers", help=f"comma-separated, in run order; known: {', '.join(SERVERS)}")
    p.add_argument("--workloads", help=f"comma-separated; known: {', '.join(WORKLOADS)}")
    p.add_argument("--concurrency", help="comma-separated connection counts (default: the groups')")
    p.add_argument("--duration", type=float, help="seconds per measured point")
    p.add_argument("--warmup", type=float, help="seconds of load not counted at each start")
    p.add_argument("--max-requests", type=int, default=200_000, help="cap on answers per point")
    p.add_argument("--max-minutes", type=float, default=45.0, help="start no point after this")
    p.add_argument("--rounds", type=int, help="head-to-head rounds per target (0: skip them)")
    p.add_argument("--round-seconds", type=float, help="seconds per side of each round")
    p.add_argument(
        "--config",
        type=Path,
        default=REPO / "service" / "configs" / "default.yaml",
        help="blockserve config the batched / unbatched variants derive from",
    )
    p.add_argument("--peer-batch-delay-ms", type=float, help="peers' batch wait (default: ours)")
    p.add_argument("--work", type=Path, default=REPO / "bench" / "work", help="scratch dir")
    p.add_argument(
        "--shared-peers",
        type=Path,
        default=REPO.parent / "shared" / "peers",
        help="the Triton / MLServer scripts (their venvs go to WORK/peers2)",
    )
    p.add_argument(
        "--write-docs", action="store_true", help=f"update {DOCS.relative_to(REPO)} and plots"
    )
    p.add_argument(
        "--profile", action="store_true", help="py-spy blockserve's resnet18-224 point at c=32"
    )
    p.add_argument("--report", type=Path, help="re-report a saved results JSON and exit")
    return p


def parse_options(argv: list[str] | None = None) -> Options:
    p = parser()
    args = p.parse_args(argv)
    pace = QUICK if args.quick else FULL
    groups = list(GROUPS) if args.targets == "all" else _names(args.targets)
    unknown = [name for name in groups if name not in GROUPS]
    if unknown:
        p.error(f"unknown target groups {unknown}; known: all, {', '.join(GROUPS)}")
    servers = _names(args.servers) if args.servers else _union(groups, lambda g: g.servers)
    workloads = _names(args.workloads) if args.workloads else _union(groups, lambda g: g.workloads)
    concurrency = (
        tuple(int(c) for c in _names(args.concurrency))
        if args.concurrency
        else tuple(sorted(set(_union(groups, lambda g: g.concurrency))))
    )
    for kind, chosen, known in (
        ("servers", servers, SERVERS),
        ("workloads", workloads, WORKLOADS),
    ):
        unknown = [name for name in chosen if name not in known]
        if unknown:
            p.error(f"unknown {kind} {unknown}; known: {', '.join(known)}")
    rounds = pace.rounds if args.rounds is None else args.rounds
    if rounds < 0:
        p.error(f"--rounds must be >= 0, got {rounds}")
    if any(c < 1 for c in concurrency):
        p.error(f"--concurrency values must be >= 1, got {list(concurrency)}")
    return Options(
        quick=args.quick,
        targets=tuple(groups),
        servers=tuple(servers),
        workloads=tuple(workloads),
        concurrency=concurrency,
        duration_s=args.duration or pace.duration_s,
        warmup_s=pace.warmup_s if args.warmup is None else args.warmup,
        max_requests=args.max_requests,
        max_minutes=args.max_minutes,
        rounds=rounds,
        round_seconds=args.round_seconds or pace.round_seconds,
        ceiling_seconds=pace.ceiling_seconds,
        latency_samples=pace.latency_samples,
        config=args.config.resolve(),
        peer_batch_delay_ms=args.peer_batch_delay_ms,
        work=args.work.resolve(),
        shared_peers=args.shared_peers.resolve(),
        write_docs=args.write_docs,
        profile=args.profile,
        report=args.report,
    )

"""Serving benchmark: blockserve against its raw-engine ceiling and against peer servers.

    .venv/bin/python bench/serve.py --quick            # seconds per point: a smoke run
    .venv/bin/python bench/serve.py --write-docs       # the full run behind docs/benchmarks.md

One run measures, on 127.0.0.1 only and one server at a time:
  * the ceiling: blockserve's own decode + preprocess + ONNX Runtime, in-process, pipelined
    over both cores the way the server runs them, at each batch size up to max_batch_size;
  * blockserve with batching on and off (max_batch_size 1): resnet18 at 224² and the tiny
    digits model, raw JPEG bodies;
  * the peers: LitServe documented (torchvision eager), LitServe on blockserve's ONNX file and
    preprocessing, TorchServe 0.12 with its image_classifier handler, all with batching on.
Load comes from wrk (a separate, compiled process) at each concurrency: one run of --warmup +
--duration seconds whose answers count only after the warm-up, bounded by --max-requests.
Then the head-to-head phase (serving/paired.py): each ratio a target names is measured in
--rounds alternating rounds of --round-seconds per side, the side not measured paused. The whole
run stops starting new measurements after --max-minutes. Targets print as PASS/FAIL lines.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[1:1] = [str(REPO)]  # `service` and `models` from this checkout, after bench/

from service.config import load_config  # noqa: E402
from serving import report  # noqa: E402
from serving.bodies import write_bodies  # noqa: E402
from serving.ceiling import EngineRig, measure_ceiling  # noqa: E402
from serving.images import CORPORA, write_corpus  # noqa: E402
from serving.load import LoadError, ensure_wrk, run_wrk  # noqa: E402
from serving.paired import HeadToHead, alternate  # noqa: E402
from serving.processes import (  # noqa: E402
    ServerFailed,
    free_port_block,
    paused,
    running_server,
    wait_ready,
)
from serving.profile import describe, find_py_spy, start_recording, summarize  # noqa: E402
from serving.scrape import batch_totals, mean_batch_size  # noqa: E402
from serving.servers import (  # noqa: E402
    SERVERS,
    ServerCase,
    Settings,
    Workload,
    write_blockserve_config,
)

PEERS_VENV = REPO / "bench" / ".venv-peers"
DOCS = REPO / "docs" / "benchmarks.md"
IMAGES_PER_CORPUS = 64
CEILING_MODELS = {"resnet18": "rgb224", "digits": "gray32"}  # model -> image corpus
HEAD_TO_HEAD_PEERS = (*report.DOCUMENTED_PEERS, report.SAME_ONNX_PEER)
HEADLINE_CONCURRENCY = report.HEADLINE_CONCURRENCY
PROFILED = ("blockserve", "resnet18", 32)  # (server, model, concurrency) that --profile samples
PROFILE_RAW = Path("profile") / "blockserve-resnet18-c32.raw"
READY_TIMEOUT_S = 600  # first start exports resnet18 (cached afterwards)
QUICK = {"duration": 2.0, "warmup": 1.0, "concurrency": "1,8,32,64", "ceiling_seconds": 1.0,
         "rounds": 2, "round_seconds": 1.0}  # fmt: skip
FULL = {"duration": 10.0, "warmup": 3.0, "concurrency": "1,8,32,64", "ceiling_seconds": 5.0,
        "rounds": 4, "round_seconds": 5.0}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="seconds-long points (smoke run)")
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated, in run order (default: all of {', '.join(SERVERS)})",
    )
    parser.add_argument("--concurrency", help="comma-separated connection counts")
    parser.add_argument("--duration", type=float, help="seconds per measured point")
    parser.add_argument(
        "--warmup", type=float, help="seconds of load not counted at the start of each run"
    )
    parser.add_argument(
        "--max-requests", type=int, default=200_000, help="safety cap on answers per point"
    )
    parser.add_argument(
        "--max-minutes", type=float, default=30.0, help="start no measurement after this"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=REPO / "service" / "configs" / "default.yaml",
        help="blockserve config the batched / unbatched variants derive from",
    )
    parser.add_argument(
        "--peer-batch-delay-ms", type=float, help="peers' batch wait (default: blockserve's)"
    )
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work", help="scratch dir")
    parser.add_argument(
        "--write-docs", action="store_true", help=f"update {DOCS.relative_to(REPO)} and plots"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the blockserve server during its resnet18 point at concurrency 32",
    )
    parser.add_argument(
        "--rounds", type=int, help="head-to-head rounds per comparison (0: skip that phase)"
    )
    parser.add_argument("--round-seconds", type=float, help="seconds per side of each round")
    parser.add_argument("--report", type=Path, help="re-report a saved results JSON and exit")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    args.duration = args.duration or defaults["duration"]
    args.warmup = defaults["warmup"] if args.warmup is None else args.warmup
    args.concurrency = [int(c) for c in (args.concurrency or defaults["concurrency"]).split(",")]
    args.ceiling_seconds = defaults["ceiling_seconds"]
    args.rounds = defaults["rounds"] if args.rounds is None else args.rounds
    args.round_seconds = args.round_seconds or defaults["round_seconds"]
    args.servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = [name for name in args.servers if name not in SERVERS]
    if unknown:
        parser.error(f"unknown servers {unknown}; known: {', '.join(SERVERS)}")
    if args.rounds < 0:
        parser.error(f"--rounds must be >= 0, got {args.rounds}")
    if any(c < 1 for c in args.concurrency):
        parser.error(f"--concurrency values must be >= 1, got {args.concurrency}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        results = json.loads(args.report.read_text())
        print_report(results)
        if args.write_docs:
            write_docs(results, args.report)
        return 0
    results = run(args)
    path = save(results, args.work)
    print_report(results)
    print(f"\nresults: {path}")
    if args.write_docs:
        if results["meta"]["quick"]:
            print("--write-docs ignored for a --quick run: its numbers are not a benchmark")
        else:
            write_docs(results, path)
    return 0


def run(args: argparse.Namespace) -> dict:
    ensure_wrk()
    started = time.monotonic()
    deadline = started + args.max_minutes * 60
    work = args.work.resolve()
    peers = [name for name in args.servers if not name.startswith("blockserve")]
    if peers:
        ensure_peers_venv()
    corpora = {
        name: write_corpus(work / "images" / name, name, IMAGES_PER_CORPUS) for name in CORPORA
    }
    results: dict = {"meta": run_metadata(args), "ceilings": {}, "servers": {}, "measurements": []}

    batched = load_config(write_blockserve_config(args.config.resolve(), work, batching=True))
    rigs = {
        name: EngineRig(batched.model(name), batched.server, _blobs(corpora[corpus]))
        for name, corpus in CEILING_MODELS.items()
    }
    results["ceilings"] = measure_ceilings(rigs, args)
    resnet18 = batched.model("resnet18")
    settings = Settings(
        work=work,
        peers_python=PEERS_VENV / "bin" / "python",
        base_config=args.config.resolve(),
        bundle=rigs["resnet18"].bundle_dir,
        max_batch_size=resnet18.batching.max_batch_size,
        peer_batch_delay_ms=(
            resnet18.batching.max_delay_ms
            if args.peer_batch_delay_ms is None
            else args.peer_batch_delay_ms
        ),
        ort_allow_spinning=resnet18.ort.allow_spinning,
        ort_threads=resnet18.ort.intra_op_threads or batched.server.ort_threads,
        instances=resnet18.instances,
    )
    for name in args.servers:
        if time.monotonic() > deadline:
            print(f"== {name}: skipped, --max-minutes {args.max_minutes} reached", flush=True)
            break
        port = free_port_block(3)
        case = SERVERS[name](settings, port)
        results["servers"][name] = {"label": case.label, "peer": case.peer, "notes": case.notes}
        try:
            rows, profile = measure_server(case, port, corpora, args, work, deadline)
            results["measurements"] += rows
            if profile:
                results["profile"] = profile
        except (ServerFailed, LoadError, subprocess.CalledProcessError, OSError) as error:
            results["servers"][name]["error"] = str(error)
            print(f"   {name} FAILED: {error}", flush=True)
    if args.rounds and "blockserve" in args.servers:
        rivals = [n for n in HEAD_TO_HEAD_PEERS if n in args.servers and _ran(results, n)]
        results["head_to_head"] = head_to_head(
            rigs["resnet18"], results, settings, rivals, corpora, args, deadline
        )
    results["meta"]["finished"] = _now()
    results["meta"]["load_average_end"] = os.getloadavg()
    results["meta"]["wall_seconds"] = round(time.monotonic() - started, 1)
    return results


def measure_ceilings(rigs: dict[str, EngineRig], args: argparse.Namespace) -> dict:
    """The in-process ceiling of each model at every batch size up to its max_batch_size."""
    print("== ceiling (in-process: service.imaging + ONNX Runtime)", flush=True)
    ceilings = {}
    for name, rig in rigs.items():
        ceiling = measure_ceiling(
            rig,
            batch_sizes=_batch_sizes(rig.max_batch_size),
            seconds=args.ceiling_seconds,
            max_images=args.max_requests,
            latency_samples=20 if args.quick else 100,
        )
        ceilings[name] = ceiling.to_dict()
        print(
            f"   {name}: {ceiling.best.throughput:.1f} img/s at batch {ceiling.best.batch_size}; "
            f"batch-1 decode+preprocess {ceiling.decode_ms:.2f} ms, "
            f"engine {ceiling.engine_b1_ms:.2f} ms",
            flush=True,
        )
    return ceilings


def head_to_head(
    rig: EngineRig,
    results: dict,
    settings: Settings,
    rivals: list[str],
    corpora: dict[str, list[Path]],
    args: argparse.Namespace,
    deadline: float,
) -> list[dict]:
    """blockserve (resnet18) alternated round by round with each reference the targets name:
    the in-process ceiling (throughput at c=32 and serial latency at c=1), then each peer at
    c=32. Whichever side is not being measured is paused (SIGSTOP), so an idle server's
    polling does not tax the other. See serving/paired.py."""
    print(
        f"== head to head: {args.rounds} alternating rounds of {args.round_seconds:.0f} s per side",
        flush=True,
    )
    best = results["ceilings"]["resnet18"]["best_batch_size"]
    seconds, work = args.round_seconds, args.work.resolve()
    serve = functools.partial(_serving, settings=settings, corpora=corpora, work=work, args=args)
    comparisons = []
    with serve(SERVERS["blockserve"]) as (our_server, ours):
        references = [
            (
                "ceiling",
                f"in-process ceiling (batch {best})",
                "img/s",
                lambda: rig.throughput(best, seconds, args.max_requests).throughput,
                _img_s(ours, seconds),
            ),
            (
                "serial",
                "in-process decode + engine (batch 1), median",
                "ms",
                lambda: rig.serial_ms(seconds),
                lambda: run_wrk(**ours, concurrency=1, seconds=seconds).p50_ms,
            ),
        ]
        for name, label, unit, reference, served in references:
            if time.monotonic() > deadline:
                return comparisons
            reference = _while_paused(reference, our_server)
            comparisons.append(_compare(name, label, unit, reference, served, args.rounds))
        for name in rivals:
            if time.monotonic() > deadline:
                break
            label = results["servers"][name]["label"]
            try:
                with serve(SERVERS[name]) as (peer_server, theirs):
                    peer = _while_paused(_img_s(theirs, seconds), our_server)
                    served = _while_paused(_img_s(ours, seconds), peer_server)
                    comparisons.append(_compare(name, label, "img/s", peer, served, args.rounds))
            except (ServerFailed, LoadError, subprocess.CalledProcessError, OSError) as error:
                print(f"   {name} FAILED: {error}", flush=True)
    return comparisons


def _img_s(load: dict, seconds: float) -> Callable[[], float]:
    """A measurement of served img/s at the headline concurrency."""
    return lambda: run_wrk(**load, concurrency=HEADLINE_CONCURRENCY, seconds=seconds).throughput


def _while_paused(measure: Callable[[], float], idle: subprocess.Popen) -> Callable[[], float]:
    def measure_alone() -> float:
        with paused(idle):
            return measure()

    return measure_alone


def _compare(name: str, label: str, unit: str, reference, ours, rounds: int) -> dict:
    reference(), ours()  # warm-up round, discarded
    a_values, b_values = alternate(reference, ours, rounds)
    result = HeadToHead(name, label, "blockserve", unit, a_values, b_values)
    spread = ", ".join(f"{ratio:.2f}" for ratio in result.round_ratios())
    print(
        f"   vs {label}: {result.a_mean:.1f} vs {result.b_mean:.1f} {unit} "
        f"(blockserve ÷ reference {result.ratio:.2f}; rounds {spread})",
        flush=True,
    )
    return result.to_dict()


@contextlib.contextmanager
def _serving(
    factory: Callable[[Settings, int], ServerCase],
    *,
    settings: Settings,
    corpora: dict[str, list[Path]],
    work: Path,
    args: argparse.Namespace,
) -> Iterator[tuple[subprocess.Popen, dict]]:
    """Start one server for its resnet18 workload; yields the process and run_wrk's
    url / body / type arguments."""
    port = free_port_block(3)
    case = factory(settings, port)
    if case.prepare is not None:
        case.prepare()
    workload = next(w for w in case.workloads if w.model == "resnet18")
    log_path = work / "logs" / f"{case.name}-head-to-head.log"
    with _started(case, log_path) as process:
        load = _prepare(
            case, workload, process, port, corpora, work, log_path, args.max_requests, args.warmup
        )
        yield process, load


def _started(case: ServerCase, log_path: Path):
    return running_server(
        case.name,
        case.command,
        ready_url=case.ready_url,
        ready_body=case.ready_body,
        log_path=log_path,
        ready_timeout_s=READY_TIMEOUT_S,
        cwd=case.cwd,
        env=case.env,
    )


def _prepare(
    case: ServerCase,
    workload: Workload,
    process: subprocess.Popen,
    port: int,
    corpora: dict[str, list[Path]],
    work: Path,
    log_path: Path,
    max_requests: int,
    warmup_s: float,
) -> dict:
    """Wait until the workload's model is ready and write its bodies; returns run_wrk's
    url / body_list / content_type / max_requests / warmup_s arguments."""
    base = f"http://127.0.0.1:{port}"
    if workload.ready_path:
        wait_ready(case.name, process, base + workload.ready_path, None, READY_TIMEOUT_S, log_path)
    bodies, content_type = write_bodies(
        corpora[workload.corpus],
        workload.wire_format,
        work / "bodies" / f"{workload.corpus}-{workload.wire_format}",
    )
    return {
        "url": base + workload.path,
        "body_list": bodies,
        "content_type": content_type,
        "max_requests": max_requests,
        "warmup_s": warmup_s,
    }


def measure_server(
    case: ServerCase,
    port: int,
    corpora: dict[str, list[Path]],
    args: argparse.Namespace,
    work: Path,
    deadline: float,
) -> tuple[list[dict], dict | None]:
    """Every (workload, concurrency) point of one server, and the py-spy summary if asked."""
    print(f"== {case.label}  ({case.notes})", flush=True)
    if case.prepare is not None:
        case.prepare()
    base = f"http://127.0.0.1:{port}"
    rows, profile = [], None
    log_path = work / "logs" / f"{case.name}.log"
    with _started(case, log_path) as process:
        for workload in case.workloads:
            target = _prepare(
                case,
                workload,
                process,
                port,
                corpora,
                work,
                log_path,
                args.max_requests,
                args.warmup,
            )
            for concurrency in args.concurrency:
                if time.monotonic() > deadline:
                    return rows, profile
                load = {**target, "concurrency": concurrency}
                metrics_url = base + case.metrics_path if case.metrics_path else None
                before = batch_totals(metrics_url, workload.model) if metrics_url else None
                result = run_wrk(**load, seconds=args.duration)
                after = batch_totals(metrics_url, workload.model) if metrics_url else None
                mean_batch = mean_batch_size(before, after) if metrics_url else None
                row = {
                    "server": case.name,
                    "model": workload.model,
                    **result.to_dict(),
                    "mean_batch": mean_batch,
                    "load_average": os.getloadavg()[0],
                }
                rows.append(row)
                print(
                    f"   {workload.model:9} c={concurrency:<3} {result.throughput:8.1f} img/s  "
                    f"p50 {result.p50_ms:7.1f}  p95 {result.p95_ms:7.1f}  "
                    f"p99 {result.p99_ms:7.1f} ms  503s {result.rejected}  "
                    f"errors {result.failed}  batch {_mean(mean_batch)}",
                    flush=True,
                )
                if args.profile and (case.name, workload.model, concurrency) == PROFILED:
                    profile = _profiled_run(process.pid, load, args, work)
    return rows, profile


def _profiled_run(pid: int, load: dict, args: argparse.Namespace, work: Path) -> dict | None:
    """One more run of the same load under py-spy; its numbers are not reported (sampling
    slows the server), only where the threads spent their time."""
    recorder = _start_profile(pid, args, work)
    if recorder is None:
        return None
    run_wrk(**load, seconds=args.duration)
    return _finish_profile(recorder, work)


def _start_profile(pid: int, args: argparse.Namespace, work: Path):
    py_spy = find_py_spy(PEERS_VENV / "bin" / "python")
    if py_spy is None:
        print("   --profile: py-spy not found (bench/.venv-peers or PATH)", flush=True)
        return None
    seconds = max(1.0, args.duration - 1.0)  # inside the measured window
    return start_recording(py_spy, pid, seconds, work / PROFILE_RAW)


def _finish_profile(recorder, work: Path) -> dict | None:
    _, stderr = recorder.communicate(timeout=120)
    raw = work / PROFILE_RAW
    if recorder.returncode != 0 or not raw.exists():
        print(f"   py-spy failed: {stderr.decode(errors='replace').strip()}", flush=True)
        return None
    summary = summarize(raw)
    print("   profile (py-spy, share of samples per thread group):", flush=True)
    for line in describe(summary):
        print(f"     {line}", flush=True)
    return summary


def _blobs(paths: list[Path]) -> list[bytes]:
    return [path.read_bytes() for path in paths]


def _ran(results: dict, server: str) -> bool:
    return server in results["servers"] and not results["servers"][server].get("error")


def _batch_sizes(max_batch: int) -> list[int]:
    sizes = [1]
    while sizes[-1] * 2 <= max_batch:
        sizes.append(sizes[-1] * 2)
    return sizes if sizes[-1] == max_batch else [*sizes, max_batch]


def _mean(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def ensure_peers_venv() -> None:
    if (PEERS_VENV / "bin" / "python").exists():
        return
    print(f"creating {PEERS_VENV} (bench/peers/setup.sh)", flush=True)
    subprocess.run(["bash", str(REPO / "bench" / "peers" / "setup.sh")], check=True, timeout=3600)


def run_metadata(args: argparse.Namespace) -> dict:
    return {
        "started": _now(),
        "quick": args.quick,
        "command": " ".join([".venv/bin/python", "bench/serve.py", *sys.argv[1:]]),
        "settings": {
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "max_requests": args.max_requests,
            "servers": args.servers,
            "config": str(args.config),
        },
        "load_average_start": os.getloadavg(),
        "machine": machine_info(),
        "versions": versions(),
    }


def machine_info() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def versions() -> dict:
    found = {}
    for name in ("onnxruntime", "fastapi", "uvicorn", "numpy", "pillow"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    found["wrk"] = (wrk.stdout or wrk.stderr).split("[")[0].strip()
    peers = PEERS_VENV / "bin" / "python"
    if peers.exists():
        script = (
            "import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in "
            "('litserve', 'torchserve', 'torch', 'torchvision', 'onnxruntime')}))"
        )
        done = subprocess.run([str(peers), "-c", script], capture_output=True, text=True)
        if done.returncode == 0:
            found["peers"] = json.loads(done.stdout)
    return found


def save(results: dict, work: Path) -> Path:
    directory = work / "results"
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"serve-{stamp}{'-quick' if results['meta']['quick'] else ''}.json"
    path.write_text(json.dumps(results, indent=1))
    return path


def print_report(results: dict) -> None:
    meta = results["meta"]
    print(f"\n## ceiling\n{report.ceiling_table(results)}")
    for model in ("resnet18", "digits"):
        if any(m["model"] == model for m in results["measurements"]):
            print(f"\n## {model}\n{report.load_table(results, model)}")
    failed = {n: s["error"] for n, s in results["servers"].items() if s.get("error")}
    for name, error in failed.items():
        print(f"\n{name} could not run:\n{error}")
    start, end = meta["load_average_start"][0], meta.get("load_average_end", [float("nan")])[0]
    print(f"\nload average (1 min): {start:.2f} at start, {end:.2f} at end")
    if results.get("head_to_head"):
        print(f"\n## head to head (alternating rounds)\n{report.head_to_head_table(results)}")
    if meta["quick"]:
        print("QUICK RUN: seconds-long points; ratios below are a smoke test, not a benchmark")
    if results.get("profile"):
        print("\n## profile: blockserve, resnet18, c=32 (py-spy)")
        print("\n".join(describe(results["profile"])))
    print(f"\n## headline\n{report.headline(results)}")
    print(f"\n## targets\n{report.targets_block(results)}")


def write_docs(results: dict, results_path: Path) -> None:
    from serving.docs import write_serving_section

    write_serving_section(results, results_path, DOCS, PEERS_VENV / "bin" / "python")
    print(f"wrote {DOCS.relative_to(REPO)} (Serving section) and docs/img/serving-*.png")


if __name__ == "__main__":
    sys.exit(main())

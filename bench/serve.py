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
Load comes from wrk (a separate, compiled process) at each concurrency: a warm-up run that is
discarded, then a measured run bounded by --duration and --max-requests. The whole run stops
starting new measurements after --max-minutes. Targets print as PASS/FAIL lines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[1:1] = [str(REPO)]  # `service` and `models` from this checkout, after bench/

from service.config import RepositoryConfig, load_config  # noqa: E402
from serving import report  # noqa: E402
from serving.bodies import write_bodies  # noqa: E402
from serving.ceiling import measure_ceiling  # noqa: E402
from serving.images import CORPORA, write_corpus  # noqa: E402
from serving.load import LoadError, ensure_wrk, run_wrk  # noqa: E402
from serving.processes import ServerFailed, free_port_block, running_server, wait_ready  # noqa: E402
from serving.profile import describe, find_py_spy, start_recording, summarize  # noqa: E402
from serving.scrape import batch_totals, mean_batch_size  # noqa: E402
from serving.servers import SERVERS, ServerCase, Settings, write_blockserve_config  # noqa: E402

PEERS_VENV = REPO / "bench" / ".venv-peers"
DOCS = REPO / "docs" / "benchmarks.md"
IMAGES_PER_CORPUS = 64
PROFILED = ("blockserve", "resnet18", 32)  # (server, model, concurrency) that --profile samples
PROFILE_RAW = Path("profile") / "blockserve-resnet18-c32.raw"
READY_TIMEOUT_S = 600  # first start exports resnet18 (cached afterwards)
QUICK = {"duration": 2.0, "warmup": 1.0, "concurrency": "1,8,32,64", "ceiling_seconds": 1.0}
FULL = {"duration": 10.0, "warmup": 3.0, "concurrency": "1,8,32,64", "ceiling_seconds": 5.0}


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
    parser.add_argument("--warmup", type=float, help="seconds of discarded load before each point")
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
    parser.add_argument("--report", type=Path, help="re-report a saved results JSON and exit")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    args.duration = args.duration or defaults["duration"]
    args.warmup = defaults["warmup"] if args.warmup is None else args.warmup
    args.concurrency = [int(c) for c in (args.concurrency or defaults["concurrency"]).split(",")]
    args.ceiling_seconds = defaults["ceiling_seconds"]
    args.servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = [name for name in args.servers if name not in SERVERS]
    if unknown:
        parser.error(f"unknown servers {unknown}; known: {', '.join(SERVERS)}")
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
    results["ceilings"], bundle = measure_ceilings(batched, corpora, args)
    resnet18 = batched.model("resnet18").batching
    settings = Settings(
        work=work,
        peers_python=PEERS_VENV / "bin" / "python",
        base_config=args.config.resolve(),
        bundle=bundle,
        max_batch_size=resnet18.max_batch_size,
        peer_batch_delay_ms=(
            resnet18.max_delay_ms if args.peer_batch_delay_ms is None else args.peer_batch_delay_ms
        ),
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
    results["ceiling_recheck"] = recheck_ceiling(batched, corpora, args, results["ceilings"])
    results["meta"]["finished"] = _now()
    results["meta"]["load_average_end"] = os.getloadavg()
    results["meta"]["wall_seconds"] = round(time.monotonic() - started, 1)
    return results


def measure_ceilings(
    config: RepositoryConfig, corpora: dict[str, list[Path]], args: argparse.Namespace
) -> tuple[dict, Path]:
    """The in-process ceiling of each model, and the resnet18 bundle the server loads."""
    print("== ceiling (in-process: service.imaging + ONNX Runtime)", flush=True)
    ceilings, bundle = {}, Path()
    for name, corpus in (("resnet18", "rgb224"), ("digits", "gray32")):
        model = config.model(name)
        ceiling, bundle_dir = measure_ceiling(
            model,
            config.server,
            [path.read_bytes() for path in corpora[corpus]],
            batch_sizes=_batch_sizes(model.batching.max_batch_size),
            seconds=args.ceiling_seconds,
            max_images=args.max_requests,
            latency_samples=20 if args.quick else 100,
        )
        ceilings[name] = ceiling.to_dict()
        bundle = bundle_dir if name == "resnet18" else bundle
        print(
            f"   {name}: {ceiling.best.throughput:.1f} img/s at batch {ceiling.best.batch_size}; "
            f"batch-1 decode+preprocess {ceiling.decode_ms:.2f} ms, "
            f"engine {ceiling.engine_b1_ms:.2f} ms",
            flush=True,
        )
    return ceilings, bundle


def recheck_ceiling(
    config: RepositoryConfig, corpora: dict[str, list[Path]], args: argparse.Namespace, ceilings
) -> dict:
    """resnet18's ceiling again at its best batch size: a drift shows the machine changed
    under the run (other load), which makes the comparisons between servers unreliable."""
    best = ceilings["resnet18"]["best_batch_size"]
    ceiling, _ = measure_ceiling(
        config.model("resnet18"),
        config.server,
        [path.read_bytes() for path in corpora["rgb224"]],
        batch_sizes=[best],
        seconds=args.ceiling_seconds,
        max_images=args.max_requests,
        latency_samples=5,
    )
    drift = ceiling.best.throughput / ceilings["resnet18"]["throughput"] - 1
    throughput = ceiling.best.throughput
    print(f"== ceiling re-check: resnet18 batch {best}: {throughput:.1f} img/s", flush=True)
    return {"model": "resnet18", "batch_size": best, "throughput": throughput, "drift": drift}


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
    with running_server(
        case.name,
        case.command,
        ready_url=case.ready_url,
        ready_body=case.ready_body,
        log_path=log_path,
        ready_timeout_s=READY_TIMEOUT_S,
        cwd=case.cwd,
        env=case.env,
    ) as process:
        for workload in case.workloads:
            if workload.ready_path:
                ready_url = base + workload.ready_path
                wait_ready(case.name, process, ready_url, None, READY_TIMEOUT_S, log_path)
            bodies, content_type = write_bodies(
                corpora[workload.corpus],
                workload.wire_format,
                work / "bodies" / f"{workload.corpus}-{workload.wire_format}",
            )
            for concurrency in args.concurrency:
                if time.monotonic() > deadline:
                    return rows, profile
                load = {
                    "url": base + workload.path,
                    "body_list": bodies,
                    "content_type": content_type,
                    "concurrency": concurrency,
                    "max_requests": args.max_requests,
                }
                if args.warmup > 0:
                    run_wrk(**load, seconds=args.warmup)
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
    print(report.stability_line(results))
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

"""`python -m bench.serve`: one run (sweep, then head to head), its report and saved results."""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.serve import environment
from bench.serve.head_to_head import head_to_head
from bench.serve.loads import Bodies
from bench.serve.options import DOCS, Options, parse_options
from bench.serve.sweep import sweep
from bench.serving import report, targets
from bench.serving.ceiling import EngineRig, measure_ceiling
from bench.serving.docs import write_serving_section
from bench.serving.images import write_corpus
from bench.serving.load import ensure_wrk
from bench.serving.profile import describe
from bench.serving.results import RunMeta, RunResults, RunSettings
from bench.serving.servers import REPO, settings_for, write_blockserve_config
from bench.serving.workloads import WORKLOADS
from service.config import load_config

IMAGES_PER_CORPUS = 64
CEILING_WORKLOADS = ("resnet18-224", "digits-predict")  # the corpora the ceiling decodes


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    if options.report:
        results = RunResults.from_json(options.report.read_text())
        print(console_report(results))
        if options.write_docs:
            write_docs(results, options.report)
        return 0
    results = run(options)
    path = save(results, options.work)
    print(f"\n{console_report(results)}\n\nresults: {path}")
    if options.write_docs:
        if results.meta.quick:
            print("--write-docs ignored for a --quick run: its numbers are not a benchmark")
        else:
            write_docs(results, path)
    return 0


def run(options: Options) -> RunResults:
    ensure_wrk()
    started = time.monotonic()
    deadline = started + options.max_minutes * 60
    if any(s.startswith(environment.PEERS_VENV_SERVERS) for s in options.servers):
        environment.ensure_peers_venv()
    results = RunResults(meta=_meta(options))
    corpora = {
        WORKLOADS[w].corpus: write_corpus(
            options.work / "images" / WORKLOADS[w].corpus, WORKLOADS[w].corpus, IMAGES_PER_CORPUS
        )
        for w in options.workloads
    }
    bodies = Bodies(options.work, corpora)
    batched = load_config(write_blockserve_config(options.config, options.work, "blockserve"))
    rigs = _rigs(options, batched, corpora)
    for workload, rig in rigs.items():
        if "ceiling" in options.targets and workload in options.workloads:
            results.ceilings[workload] = _ceiling(rig, options)
    rig = rigs.get("resnet18-224")
    settings = settings_for(
        options.config,
        options.work,
        options.shared_peers,
        environment.PEERS_PYTHON,
        bundle=rig.bundle_dir if rig else None,
        peer_batch_delay_ms=options.peer_batch_delay_ms,
    )
    sweep(options, settings, bodies, results, deadline)
    chosen = [
        t
        for t in targets.selected(list(options.targets))
        if {t.ours.server, t.reference.server} - {targets.IN_PROCESS} <= set(options.servers)
        and t.ours.workload in options.workloads
        and (t.reference.server != targets.IN_PROCESS or t.reference.workload in results.ceilings)
    ]
    if options.rounds and chosen:
        head_to_head(chosen, options, settings, bodies, rig, results, deadline)
    results.meta.finished = _now()
    results.meta.load_average_end = list(os.getloadavg())
    results.meta.wall_seconds = round(time.monotonic() - started, 1)
    return results


def _rigs(options: Options, batched, corpora: dict[str, list[Path]]) -> dict[str, EngineRig]:
    """In-process engines: the ceiling's, and resnet18's bundle for LitServe setup 2."""
    wanted = [
        w for w in CEILING_WORKLOADS if "ceiling" in options.targets and w in options.workloads
    ]
    if "litserve-onnx" in options.servers and "resnet18-224" not in wanted:
        wanted.append("resnet18-224")
    rigs = {}
    for workload in wanted:
        corpus = WORKLOADS[workload].corpus
        if corpus not in corpora:
            corpora[corpus] = write_corpus(
                options.work / "images" / corpus, corpus, IMAGES_PER_CORPUS
            )
        blobs = [path.read_bytes() for path in corpora[corpus]]
        rigs[workload] = EngineRig(batched.model(WORKLOADS[workload].model), batched.server, blobs)
    return rigs


def _ceiling(rig: EngineRig, options: Options):
    sizes = [1]
    while sizes[-1] * 2 <= rig.max_batch_size:
        sizes.append(sizes[-1] * 2)
    if sizes[-1] != rig.max_batch_size:
        sizes.append(rig.max_batch_size)
    ceiling = measure_ceiling(
        rig,
        batch_sizes=sizes,
        seconds=options.ceiling_seconds,
        max_images=options.max_requests,
        latency_samples=options.latency_samples,
    )
    print(
        f"== ceiling {rig.name}: {ceiling.best.throughput:.1f} img/s at batch "
        f"{ceiling.best.batch_size}; decode+preprocess {ceiling.decode_ms:.2f} ms, "
        f"engine (batch 1) {ceiling.engine_b1_ms:.2f} ms",
        flush=True,
    )
    return ceiling


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _meta(options: Options) -> RunMeta:
    return RunMeta(
        started=_now(),
        quick=options.quick,
        command=" ".join([".venv/bin/python -m bench.serve", *sys.argv[1:]]),
        settings=RunSettings(
            concurrency=list(options.concurrency),
            duration_s=options.duration_s,
            warmup_s=options.warmup_s,
            max_requests=options.max_requests,
            servers=list(options.servers),
            workloads=list(options.workloads),
            targets=list(options.targets),
            rounds=options.rounds,
            round_seconds=options.round_seconds,
            config=str(
                options.config.relative_to(REPO)
                if options.config.is_relative_to(REPO)
                else options.config
            ),
        ),
        machine=environment.machine(),
        versions=environment.versions(options.work / "peers2"),
        load_average_start=list(os.getloadavg()),
    )


def save(results: RunResults, work: Path) -> Path:
    directory = work / "results"
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"serve-{stamp}{'-quick' if results.meta.quick else ''}.json"
    path.write_text(results.to_json())
    return path


def console_report(results: RunResults) -> str:
    text = report.text(results)
    if results.profile:
        profile = "\n".join(describe(results.profile))
        text += f"\n\n## profile: blockserve, resnet18-224, c=32 (py-spy)\n{profile}"
    return text


def write_docs(results: RunResults, results_path: Path) -> None:
    write_serving_section(results, results_path, DOCS, environment.PEERS_PYTHON)
    print(f"wrote {DOCS.relative_to(REPO)} (Serving section) and docs/img/serving-*.png")

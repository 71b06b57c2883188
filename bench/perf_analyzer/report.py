"""The perf_analyzer run as a table (blockserve ÷ Triton per model, protocol and concurrency)
and as the docs/benchmarks.md section."""

from __future__ import annotations

from dataclasses import dataclass

from bench.perf_analyzer.measurements import Level
from bench.perf_analyzer.runner import Outcome, Pace
from bench.serving.docs import Section

OURS, REFERENCE = "blockserve", "triton"
SECTION = Section("## perf_analyzer", "perf-analyzer", "python -m bench.perf_analyzer --write-docs")


@dataclass(frozen=True)
class RunInfo:
    started: str  # ISO time, UTC
    command: str
    cores: int
    load_start: float  # 1-minute load average
    load_end: float
    perf_analyzer: str  # its version
    reference_label: str
    setups: list[str]  # one line per server: its label and how it was set up
    pace: Pace
    attempts: int  # perf_analyzer runs per level at most


def _ms(level: Level | None, key: str) -> str:
    return "–" if level is None else f"{getattr(level, key) / 1000:.1f}"


def _rate(level: Level | None) -> str:
    return "–" if level is None else f"{level.infer_per_s:.1f}"


def table(outcomes: list[Outcome], reference_label: str) -> str:
    """One row per model, protocol and concurrency, in the order they were measured."""
    rows = [
        f"| model | protocol | conc. | {reference_label} infer/s | blockserve infer/s | ratio "
        "| p50 ms (Triton / blockserve) | p99 ms (Triton / blockserve) "
        "| blockserve server-side stats |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    levels = {(o.case.server, o.case.model, o.case.protocol, o.case.concurrency): o.level
              for o in outcomes}  # fmt: skip
    for model, protocol, concurrency in dict.fromkeys(key[1:] for key in levels):
        b = levels.get((OURS, model, protocol, concurrency))
        t = levels.get((REFERENCE, model, protocol, concurrency))
        ratio = f"{b.infer_per_s / t.infer_per_s:.2f}x" if b and t and t.infer_per_s else "–"
        stats = "–" if b is None else ("read" if b.server_us else "none")
        rows.append(
            f"| {model} | {protocol} | {concurrency} | {_rate(t)} | {_rate(b)} | {ratio} "
            f"| {_ms(t, 'p50_us')} / {_ms(b, 'p50_us')} | {_ms(t, 'p99_us')} / {_ms(b, 'p99_us')} "
            f"| {stats} |"
        )
    return "\n".join(rows)


def failures(outcomes: list[Outcome]) -> list[str]:
    return [
        f"{o.case.server}, {o.case.model}, {o.case.protocol}, c={o.case.concurrency}: {o.error}"
        for o in outcomes
        if o.error
    ]


def section_body(outcomes: list[Outcome], info: RunInfo) -> str:
    pace = info.pace
    stopped = [f"- {line}" for line in failures(outcomes)]
    return "\n".join(
        [
            f"Measured {info.started}, {info.cores} cores; 1-minute load average "
            f"{info.load_start:.2f} at start, {info.load_end:.2f} at end. perf_analyzer "
            f"{info.perf_analyzer} (NVIDIA's binary, unmodified, run by "
            "`../shared/tools/perf_analyzer.sh`) against blockserve and "
            f"{info.reference_label}.",
            "",
            f"This run: `{info.command}`. One perf_analyzer run per server, model, protocol and "
            f"concurrency: `--concurrency-range C:C --measurement-interval "
            f"{pace.measurement_interval_ms} --max-trials {pace.max_trials} "
            f"--stability-percentage {pace.stability_percent}`, its defaults otherwise (random "
            "input data, batch 1, synchronous requests; HTTP with the binary tensor data "
            "extension); a level counts once three windows agree within "
            f"{pace.stability_percent} % (at most {info.attempts} runs per level). Both servers "
            "stay up; blockserve is paused (SIGSTOP) "
            "while Triton is measured, and which goes first alternates. Latencies are "
            "perf_analyzer's, client side; ratio = blockserve ÷ Triton infer/s; server-side "
            "stats: whether perf_analyzer could read blockserve's statistics.",
            "",
            *(f"- {setup}" for setup in info.setups),
            "",
            table(outcomes, info.reference_label),
            *(["", "No measurement:", "", *stopped] if stopped else []),
        ]
    )

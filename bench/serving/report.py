"""The run's tables as Markdown and its targets as PASS/FAIL lines, from `RunResults` alone, so
a saved run can be reported again: `python -m bench.serve --report RESULTS.json`."""

from __future__ import annotations

from bench.serving import targets
from bench.serving.results import RunResults
from bench.serving.workloads import WORKLOADS

LATENCIES = ("p50_ms", "p95_ms", "p99_ms")


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


def load_table(results: RunResults, workload: str) -> str:
    """One row per server, body kind and concurrency for `workload`."""
    ceiling = results.ceilings.get(workload)
    unit = WORKLOADS[workload].unit
    rows = [
        f"| server | body | conc. | {unit} | ÷ ceiling | p50 ms | p95 ms | p99 ms | ok | 503 "
        "| errors | mean batch | load |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for point in results.points:
        if point.workload != workload:
            continue
        load = point.load
        ratio = point.throughput / ceiling.best.throughput if ceiling else None
        p50, p95, p99 = (_fmt(getattr(load, key) if load.requests else None) for key in LATENCIES)
        rows.append(
            f"| {results.servers[point.server].label} | {point.body} | {point.concurrency} "
            f"| {point.throughput:.1f}{' (capped)' if load.capped else ''} "
            f"| {_fmt(ratio, '.2f')} | {p50} | {p95} | {p99} | {load.ok} | {load.rejected} "
            f"| {load.failed} | {_fmt(point.mean_batch, '.2f')} | {point.load_average:.1f} |"
        )
    return "\n".join(rows)


def ceiling_table(results: RunResults) -> str:
    rows = [
        "| workload | batch | img/s | decode+preprocess ms (1 image) | engine ms (batch 1) |",
        "|---|--:|--:|--:|--:|",
    ]
    for workload, ceiling in results.ceilings.items():
        for point in ceiling.points:
            best = " **best**" if point == ceiling.best else ""
            rows.append(
                f"| {workload} | {point.batch_size}{best} | {point.throughput:.1f} "
                f"| {ceiling.decode_ms:.2f} | {ceiling.engine_b1_ms:.2f} |"
            )
    return "\n".join(rows)


def head_to_head_table(results: RunResults) -> str:
    rows = [
        "| target | reference | unit | reference | blockserve | ratio / difference | per round |",
        "|---|---|---|--:|--:|--:|---|",
    ]
    for pair in results.head_to_head:
        rule = next(t.rule for t in targets.TARGETS if t.name == pair.name)
        summary = (
            f"{pair.difference:+.1f} ms"
            if rule == targets.OVERHEAD_AT_MOST
            else f"{pair.ratio:.2f}x"
        )
        rows.append(
            f"| {pair.name} | {pair.a} | {pair.unit} | {pair.a_mean:.1f} | {pair.b_mean:.1f} "
            f"| {summary} | {targets.per_round(pair)} |"
        )
    return "\n".join(rows)


def servers_table(results: RunResults) -> str:
    rows = ["| server | setup | status |", "|---|---|---|"]
    for info in results.servers.values():
        status = "ran" if info.error is None else f"failed: `{info.error.splitlines()[0]}`"
        rows.append(f"| {info.label} | {info.notes} | {status} |")
    return "\n".join(rows)


def targets_block(results: RunResults) -> str:
    return "\n".join(verdict.line() for verdict in targets.evaluate(results))


def headline(results: RunResults) -> str:
    """One phrase per measured target: blockserve's rate or latency against the reference's."""
    parts = []
    for target in targets.selected(results.meta.settings.targets):
        pair = results.pair(target.name)
        if pair is None or not pair.a_mean:
            continue
        relation = (
            f"{pair.difference:+.1f} ms over"
            if target.rule == targets.OVERHEAD_AT_MOST
            else f"{pair.ratio:.2f} x"
        )
        parts.append(f"{target.ours.workload} at c={target.ours.concurrency}: {relation} {pair.a}")
    cores = results.meta.machine.cores
    return f"blockserve on {cores} CPU cores: " + ("; ".join(parts) or "no target measured")


def text(results: RunResults) -> str:
    """The console report."""
    meta = results.meta
    blocks = []
    if results.ceilings:
        blocks.append(f"## ceiling\n{ceiling_table(results)}")
    for name, workload in WORKLOADS.items():
        if any(p.workload == name for p in results.points):
            blocks.append(f"## {workload.title}\n{load_table(results, name)}")
    for name, info in results.servers.items():
        if info.error:
            blocks.append(f"{name} could not run:\n{info.error}")
    end = meta.load_average_end[0] if meta.load_average_end else float("nan")
    blocks.append(
        f"load average (1 min): {meta.load_average_start[0]:.2f} at start, {end:.2f} at end"
    )
    if results.head_to_head:
        blocks.append(f"## head to head (alternating rounds)\n{head_to_head_table(results)}")
    if meta.quick:
        blocks.append(
            "QUICK RUN: seconds-long points; the ratios are a smoke test, not a benchmark"
        )
    blocks.append(f"## headline\n{headline(results)}")
    blocks.append(f"## targets\n{targets_block(results)}")
    return "\n\n".join(blocks)

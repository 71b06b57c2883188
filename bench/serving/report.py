"""Targets (issue #7) as PASS/FAIL lines, and the result tables as Markdown.

Everything here reads the run's result dict (see bench/serve.py), so a saved JSON can be
reported again without re-running: `bench/serve.py --report RESULTS.json`.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADLINE_CONCURRENCY = 32
TAIL_CONCURRENCY = 64
SERVED_VS_CEILING = 0.90
P50_OVERHEAD_MS = 3.0
VS_DOCUMENTED_PEERS = 1.5
VS_SAME_ONNX = 1.0
P99_OVER_P50 = 2.0
DOCUMENTED_PEERS = ("litserve-documented", "torchserve")
SAME_ONNX_PEER = "litserve-onnx"
LATENCIES = ("p50_ms", "p95_ms", "p99_ms")


@dataclass(frozen=True)
class TargetResult:
    name: str
    passed: bool | None  # None: not measured in this run
    detail: str

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]

    def line(self) -> str:
        return f"{self.verdict}  {self.name}: {self.detail}"


def find(results: dict, server: str, model: str, concurrency: int) -> dict | None:
    return next(
        (
            m
            for m in results["measurements"]
            if (m["server"], m["model"], m["concurrency"]) == (server, model, concurrency)
        ),
        None,
    )


def evaluate_targets(results: dict) -> list[TargetResult]:
    return [
        _served_vs_ceiling(results),
        _p50_overhead(results),
        *(_vs_peer(results, peer, VS_DOCUMENTED_PEERS) for peer in DOCUMENTED_PEERS),
        _vs_peer(results, SAME_ONNX_PEER, VS_SAME_ONNX),
        _tail(results),
    ]


def _served_vs_ceiling(results: dict) -> TargetResult:
    name = f"served img/s at c={HEADLINE_CONCURRENCY} >= {SERVED_VS_CEILING:.2f} x ceiling"
    served = find(results, "blockserve", "resnet18", HEADLINE_CONCURRENCY)
    ceiling = results["ceilings"].get("resnet18")
    if served is None or ceiling is None:
        return TargetResult(name, None, "not measured")
    if served["ok"] == 0:
        return TargetResult(name, False, "no successful answer at this concurrency")
    ratio = served["throughput"] / ceiling["throughput"]
    detail = (
        f"{served['throughput']:.1f} / {ceiling['throughput']:.1f} img/s "
        f"(ceiling at batch {ceiling['best_batch_size']}) = {ratio:.2f}"
    )
    return TargetResult(name, ratio >= SERVED_VS_CEILING, detail)


def _p50_overhead(results: dict) -> TargetResult:
    name = f"p50 at c=1 <= decode + preprocess + engine(b=1) + {P50_OVERHEAD_MS:.0f} ms"
    served = find(results, "blockserve", "resnet18", 1)
    ceiling = results["ceilings"].get("resnet18")
    if served is None or ceiling is None:
        return TargetResult(name, None, "not measured")
    if served["ok"] == 0:
        return TargetResult(name, False, "no successful answer at this concurrency")
    budget = ceiling["serial_b1_ms"] + P50_OVERHEAD_MS
    detail = (
        f"p50 {served['p50_ms']:.1f} ms vs budget {budget:.1f} ms "
        f"({ceiling['decode_ms']:.1f} decode+preprocess + {ceiling['engine_b1_ms']:.1f} engine "
        f"+ {P50_OVERHEAD_MS:.0f}); overhead {served['p50_ms'] - ceiling['serial_b1_ms']:+.1f} ms"
    )
    return TargetResult(name, served["p50_ms"] <= budget, detail)


def _vs_peer(results: dict, peer: str, factor: float) -> TargetResult:
    label = results["servers"].get(peer, {}).get("label", peer)
    name = f"img/s at c={HEADLINE_CONCURRENCY} >= {factor:.1f} x {label}"
    ours = find(results, "blockserve", "resnet18", HEADLINE_CONCURRENCY)
    theirs = find(results, peer, "resnet18", HEADLINE_CONCURRENCY)
    if ours is None or theirs is None:
        why = results["servers"].get(peer, {}).get("error") or "not measured"
        return TargetResult(name, None, why.splitlines()[0])
    if theirs["throughput"] == 0:
        if ours["throughput"] == 0:
            return TargetResult(name, None, "neither answered a request in the run")
        return TargetResult(name, True, f"{ours['throughput']:.1f} img/s vs 0 (peer answered none)")
    ratio = ours["throughput"] / theirs["throughput"]
    detail = f"{ours['throughput']:.1f} / {theirs['throughput']:.1f} img/s = {ratio:.2f}x"
    return TargetResult(name, ratio >= factor, detail)


def _tail(results: dict) -> TargetResult:
    name = f"p99 at c={TAIL_CONCURRENCY} <= {P99_OVER_P50:.0f} x p50, no errors but 503s"
    served = find(results, "blockserve", "resnet18", TAIL_CONCURRENCY)
    if served is None:
        return TargetResult(name, None, "not measured")
    if served["ok"] == 0:
        return TargetResult(name, False, "no successful answer at this concurrency")
    ratio = served["p99_ms"] / served["p50_ms"] if served["p50_ms"] else float("inf")
    detail = (
        f"p99 {served['p99_ms']:.0f} ms / p50 {served['p50_ms']:.0f} ms = {ratio:.2f}; "
        f"{served['rejected']} x 503, {served['failed']} other errors"
    )
    return TargetResult(name, ratio <= P99_OVER_P50 and served["failed"] == 0, detail)


STABLE_DRIFT = 0.10


def headline(results: dict) -> str:
    """The README sentence: served vs ceiling and vs each peer at the headline concurrency."""
    ours = find(results, "blockserve", "resnet18", HEADLINE_CONCURRENCY)
    ceiling = results["ceilings"].get("resnet18")
    if ours is None or ceiling is None or not ours["ok"]:
        return "headline: blockserve resnet18 at concurrency 32 not measured"
    parts = [
        f"resnet18 224² ONNX on {results['meta']['machine']['cores']} CPU cores, "
        f"{HEADLINE_CONCURRENCY} concurrent clients: {ours['throughput']:.1f} img/s = "
        f"{ours['throughput'] / ceiling['throughput']:.2f} x the in-process ceiling"
    ]
    for name, server in results["servers"].items():
        theirs = find(results, name, "resnet18", HEADLINE_CONCURRENCY)
        if server["peer"] and theirs and theirs["throughput"]:
            parts.append(f"{ours['throughput'] / theirs['throughput']:.2f} x {server['label']}")
    return "; ".join(parts)


def stability_line(results: dict) -> str:
    """Whether the resnet18 ceiling held from the start to the end of the run."""
    recheck = results.get("ceiling_recheck")
    if not recheck:
        return "ceiling re-check: not run"
    verdict = "stable" if abs(recheck["drift"]) <= STABLE_DRIFT else "NOT STABLE (other load?)"
    return (
        f"ceiling re-check at the end: {recheck['throughput']:.1f} img/s at batch "
        f"{recheck['batch_size']}, {recheck['drift']:+.0%} vs the start: machine {verdict}"
    )


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


def load_table(results: dict, model: str) -> str:
    """One row per server and concurrency for `model`."""
    ceiling = results["ceilings"].get(model)
    rows = [
        "| server | conc. | img/s | ÷ ceiling | p50 ms | p95 ms | p99 ms | ok | 503 | errors "
        "| mean batch | load |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for m in results["measurements"]:
        if m["model"] != model:
            continue
        ratio = m["throughput"] / ceiling["throughput"] if ceiling else None
        label = results["servers"][m["server"]]["label"]
        p50, p95, p99 = (_fmt(m[key] if m["requests"] else None) for key in LATENCIES)
        rows.append(
            f"| {label} | {m['concurrency']} | {m['throughput']:.1f}"
            f"{' (capped)' if m['capped'] else ''} | {_fmt(ratio, '.2f')} "
            f"| {p50} | {p95} | {p99} | {m['ok']} "
            f"| {m['rejected']} | {m['failed']} | {_fmt(m['mean_batch'], '.2f')} "
            f"| {m['load_average']:.1f} |"
        )
    return "\n".join(rows)


def ceiling_table(results: dict) -> str:
    rows = [
        "| model | batch | img/s | decode+preprocess ms (1 image) | engine ms (batch 1) |",
        "|---|--:|--:|--:|--:|",
    ]
    for model, ceiling in results["ceilings"].items():
        for point in ceiling["points"]:
            best = " **best**" if point["batch_size"] == ceiling["best_batch_size"] else ""
            rows.append(
                f"| {model} | {point['batch_size']}{best} | {point['throughput']:.1f} "
                f"| {ceiling['decode_ms']:.2f} | {ceiling['engine_b1_ms']:.2f} |"
            )
    return "\n".join(rows)


def servers_table(results: dict) -> str:
    rows = ["| server | setup | status |", "|---|---|---|"]
    for info in results["servers"].values():
        status = "ran" if not info.get("error") else f"failed: `{info['error'].splitlines()[0]}`"
        rows.append(f"| {info['label']} | {info['notes']} | {status} |")
    return "\n".join(rows)


def targets_block(results: dict) -> str:
    return "\n".join(target.line() for target in evaluate_targets(results))

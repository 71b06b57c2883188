"""Targets (issue #7) as PASS/FAIL lines, and the result tables as Markdown.

Everything here reads the run's result dict (see bench/serve.py), so a saved JSON can be
reported again without re-running: `bench/serve.py --report RESULTS.json`.
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.paired import HeadToHead

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
NOT_PAIRED = "not measured head to head (blockserve and this reference in alternating rounds)"


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


def head_to_head(results: dict, name: str) -> HeadToHead | None:
    found = next((h for h in results.get("head_to_head", []) if h["name"] == name), None)
    return HeadToHead.from_dict(found) if found else None


def _per_round(pair: HeadToHead) -> str:
    """Each round's blockserve ÷ reference, or blockserve − reference for latencies."""
    if pair.unit == "ms":
        rounds = zip(pair.a_values, pair.b_values, strict=True)
        return ", ".join(f"{b - a:+.1f}" for a, b in rounds)
    return ", ".join(f"{ratio:.2f}" for ratio in pair.round_ratios())


def _rounds(pair: HeadToHead) -> str:
    return f"{len(pair.a_values)} rounds: {_per_round(pair)}"


def _served_vs_ceiling(results: dict) -> TargetResult:
    name = f"served img/s at c={HEADLINE_CONCURRENCY} >= {SERVED_VS_CEILING:.2f} x ceiling"
    pair = head_to_head(results, "ceiling")
    if pair is None:
        return TargetResult(name, None, NOT_PAIRED)
    detail = (
        f"{pair.b_mean:.1f} / {pair.a_mean:.1f} img/s ({pair.a}) = {pair.ratio:.2f} "
        f"({_rounds(pair)})"
    )
    return TargetResult(name, pair.ratio >= SERVED_VS_CEILING, detail)


def _p50_overhead(results: dict) -> TargetResult:
    name = f"p50 at c=1 <= decode + preprocess + engine(b=1) + {P50_OVERHEAD_MS:.0f} ms"
    pair = head_to_head(results, "serial")
    if pair is None:
        return TargetResult(name, None, NOT_PAIRED)
    detail = (
        f"p50 {pair.b_mean:.1f} ms vs {pair.a_mean:.1f} ms serial in-process: overhead "
        f"{pair.difference:+.1f} ms ({_rounds(pair)} ms)"
    )
    return TargetResult(name, pair.difference <= P50_OVERHEAD_MS, detail)


def _vs_peer(results: dict, peer: str, factor: float) -> TargetResult:
    label = results["servers"].get(peer, {}).get("label", peer)
    name = f"img/s at c={HEADLINE_CONCURRENCY} >= {factor:.1f} x {label}"
    pair = head_to_head(results, peer)
    if pair is None:
        why = results["servers"].get(peer, {}).get("error") or NOT_PAIRED
        return TargetResult(name, None, why.splitlines()[0])
    if pair.a_mean == 0:
        if pair.b_mean == 0:
            return TargetResult(name, None, "neither answered a request in the run")
        return TargetResult(name, True, f"{pair.b_mean:.1f} img/s vs 0 (peer answered none)")
    detail = f"{pair.b_mean:.1f} / {pair.a_mean:.1f} img/s = {pair.ratio:.2f}x ({_rounds(pair)})"
    return TargetResult(name, pair.ratio >= factor, detail)


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


def headline(results: dict) -> str:
    """The README sentence: blockserve vs the ceiling and vs each peer, head to head."""
    ceiling = head_to_head(results, "ceiling")
    if ceiling is None:
        return f"headline: blockserve resnet18 at concurrency {HEADLINE_CONCURRENCY} not measured"
    parts = [
        f"resnet18 224² ONNX on {results['meta']['machine']['cores']} CPU cores, "
        f"{HEADLINE_CONCURRENCY} concurrent clients: {ceiling.b_mean:.1f} img/s = "
        f"{ceiling.ratio:.2f} x the in-process ceiling"
    ]
    for name, server in results["servers"].items():
        pair = head_to_head(results, name)
        if server["peer"] and pair and pair.a_mean:
            parts.append(f"{pair.ratio:.2f} x {server['label']}")
    return "; ".join(parts)


def head_to_head_table(results: dict) -> str:
    rows = [
        "| blockserve vs | unit | reference | blockserve | ratio / difference | per round |",
        "|---|---|--:|--:|--:|---|",
    ]
    for entry in results.get("head_to_head", []):
        pair = HeadToHead.from_dict(entry)
        summary = f"{pair.difference:+.1f} ms" if pair.unit == "ms" else f"{pair.ratio:.2f}x"
        rows.append(
            f"| {pair.a} | {pair.unit} | {pair.a_mean:.1f} | {pair.b_mean:.1f} | {summary} "
            f"| {_per_round(pair)} |"
        )
    return "\n".join(rows)


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

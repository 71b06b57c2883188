"""The targets: each a comparison measured head to head (`paired.py`), grouped so that a run
can measure only some (`--targets request-path`), and their PASS/FAIL verdicts."""

from __future__ import annotations

from dataclasses import dataclass

from bench.serving.paired import HeadToHead
from bench.serving.results import RunResults
from bench.serving.workloads import WORKLOADS

IN_PROCESS = "in-process"  # the ceiling rig, not a server
THROUGHPUT, P50 = "throughput", "p50_ms"  # what a side measures
AT_LEAST, AT_MOST, OVERHEAD_AT_MOST = "ratio >=", "ratio <=", "difference <="
HEADLINE_CONCURRENCY = 32
TENSOR_CONCURRENCY = 16  # resnet18 tensors: 16 in flight fill one batch of Triton's and ours
TAIL_CONCURRENCY = 64
P99_OVER_P50 = 2.0
NOT_PAIRED = "not measured head to head (blockserve and this reference in alternating rounds)"


@dataclass(frozen=True)
class Side:
    server: str  # a servers.SERVERS name, or IN_PROCESS
    workload: str
    concurrency: int
    statistic: str  # THROUGHPUT or P50 (in-process P50: the serial decode + engine median)
    body: str | None = None  # None: the server's first body kind for the workload


@dataclass(frozen=True)
class Target:
    name: str
    group: str
    ours: Side
    reference: Side
    bound: float
    rule: str  # AT_LEAST / AT_MOST: ours ÷ reference; OVERHEAD_AT_MOST: ours − reference (ms)

    @property
    def unit(self) -> str:
        return "ms" if self.ours.statistic == P50 else WORKLOADS[self.ours.workload].unit

    def title(self, reference_label: str) -> str:
        what = f"{self.ours.workload} {self._statistic()} at c={self.ours.concurrency}"
        if self.rule == OVERHEAD_AT_MOST:
            return f"{what} <= {reference_label} + {self.bound:g} ms"
        op = ">=" if self.rule == AT_LEAST else "<="
        return f"{what} {op} {self.bound:g} x {reference_label}"

    def passed(self, pair: HeadToHead) -> bool:
        if self.rule == OVERHEAD_AT_MOST:
            return pair.difference <= self.bound
        return pair.ratio >= self.bound if self.rule == AT_LEAST else pair.ratio <= self.bound

    def _statistic(self) -> str:
        return "p50" if self.ours.statistic == P50 else self.unit


@dataclass(frozen=True)
class TargetGroup:
    name: str
    servers: tuple[str, ...]  # swept by default when the group is selected
    workloads: tuple[str, ...]
    concurrency: tuple[int, ...]  # the sweep's default
    description: str


GROUPS = {
    g.name: g
    for g in (
        TargetGroup(
            "request-path",
            ("blockserve", "blockserve-workers", "blockserve-baseline", "triton", "mlserver"),
            ("digits-v2", "digits-predict", "resnet18-jpeg"),
            (1, 32, 64),
            "per-request cost against Triton and blockserve before this work",
        ),
        TargetGroup(
            "binary-tensor",
            ("blockserve", "triton"),
            ("resnet18-v2",),
            (TENSOR_CONCURRENCY,),
            "resnet18 FP32 tensors over V2 HTTP against Triton, binary and JSON bodies",
        ),
        TargetGroup(
            "ceiling",
            ("blockserve", "blockserve-unbatched"),
            ("resnet18-224", "digits-predict"),
            (1, 8, 32, 64),
            "served throughput and latency against the in-process engine",
        ),
        TargetGroup(
            "peers",
            ("blockserve", "litserve-documented", "litserve-onnx", "torchserve",
             "torchserve-1worker"),
            ("resnet18-224",),
            (1, 8, 32, 64),
            "resnet18 throughput against LitServe and TorchServe",
        ),
    )
}  # fmt: skip


def _blockserve(workload: str, concurrency: int, statistic: str = THROUGHPUT) -> Side:
    return Side("blockserve", workload, concurrency, statistic)


def _workers(workload: str, concurrency: int) -> Side:
    """blockserve as small models are best served: several worker processes."""
    return Side("blockserve-workers", workload, concurrency, THROUGHPUT)


_C = HEADLINE_CONCURRENCY
TARGETS = (
    Target("triton-digits-v2", "request-path", _workers("digits-v2", _C),
           Side("triton", "digits-v2", _C, THROUGHPUT, "v2-binary"), 0.5, AT_LEAST),
    Target("baseline-digits-v2", "request-path", _workers("digits-v2", _C),
           Side("blockserve-baseline", "digits-v2", _C, THROUGHPUT), 4.0, AT_LEAST),
    Target("baseline-digits-png", "request-path", _workers("digits-predict", _C),
           Side("blockserve-baseline", "digits-predict", _C, THROUGHPUT), 3.0, AT_LEAST),
    Target("triton-resnet18-jpeg", "request-path", _blockserve("resnet18-jpeg", _C),
           Side("triton", "resnet18-jpeg", _C, THROUGHPUT), 1.0, AT_LEAST),
    Target("triton-digits-p50", "request-path", _blockserve("digits-v2", 1, P50),
           Side("triton", "digits-v2", 1, P50, "v2-binary"), 1.5, AT_MOST),
    Target("triton-resnet18-binary", "binary-tensor",
           Side("blockserve", "resnet18-v2", TENSOR_CONCURRENCY, THROUGHPUT, "v2-binary"),
           Side("triton", "resnet18-v2", TENSOR_CONCURRENCY, THROUGHPUT, "v2-binary"),
           1.0, AT_LEAST),
    Target("ceiling", "ceiling", _blockserve("resnet18-224", _C),
           Side(IN_PROCESS, "resnet18-224", _C, THROUGHPUT), 0.90, AT_LEAST),
    Target("serial", "ceiling", _blockserve("resnet18-224", 1, P50),
           Side(IN_PROCESS, "resnet18-224", 1, P50), 3.0, OVERHEAD_AT_MOST),
    Target("litserve-documented", "peers", _blockserve("resnet18-224", _C),
           Side("litserve-documented", "resnet18-224", _C, THROUGHPUT), 1.5, AT_LEAST),
    Target("torchserve", "peers", _blockserve("resnet18-224", _C),
           Side("torchserve", "resnet18-224", _C, THROUGHPUT), 1.5, AT_LEAST),
    Target("litserve-onnx", "peers", _blockserve("resnet18-224", _C),
           Side("litserve-onnx", "resnet18-224", _C, THROUGHPUT), 1.0, AT_LEAST),
)  # fmt: skip


def selected(groups: list[str]) -> list[Target]:
    return [target for target in TARGETS if target.group in groups]


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


def per_round(pair: HeadToHead) -> str:
    """Each round's blockserve ÷ reference, or blockserve − reference for latencies."""
    target = next((t for t in TARGETS if t.name == pair.name), None)
    if target is not None and target.rule == OVERHEAD_AT_MOST:
        rounds = zip(pair.a_values, pair.b_values, strict=True)
        return ", ".join(f"{b - a:+.1f}" for a, b in rounds)
    return ", ".join(f"{ratio:.2f}" for ratio in pair.round_ratios())


def evaluate(results: RunResults) -> list[TargetResult]:
    groups = results.meta.settings.targets
    verdicts = [_verdict(results, target) for target in selected(groups)]
    return [*verdicts, _tail(results)] if "ceiling" in groups else verdicts


def side_label(results: RunResults, side: Side) -> str:
    if side.server == IN_PROCESS:
        ceiling = results.ceilings.get(side.workload)
        batch = f"batch {ceiling.best.batch_size}" if ceiling else "best batch"
        if side.statistic == P50:
            return "in-process decode + engine (batch 1) median"
        return f"in-process ceiling ({batch})"
    info = results.servers.get(side.server)
    label = info.label if info else side.server
    return f"{label} [{side.body}]" if side.body else label


def _verdict(results: RunResults, target: Target) -> TargetResult:
    name = target.title(side_label(results, target.reference))
    pair = results.pair(target.name)
    if pair is None:
        failed = [results.servers.get(side.server) for side in (target.reference, target.ours)]
        why = next((f"{info.label}: {info.error}" for info in failed if info and info.error), None)
        return TargetResult(name, None, (why or NOT_PAIRED).splitlines()[0])
    unit, rounds = pair.unit, f"{len(pair.a_values)} rounds: {per_round(pair)}"
    if target.rule == OVERHEAD_AT_MOST:
        detail = (
            f"{pair.b_mean:.1f} ms vs {pair.a_mean:.1f} ms: overhead {pair.difference:+.1f} ms "
            f"({rounds} ms)"
        )
        return TargetResult(name, target.passed(pair), detail)
    if pair.a_mean == 0:
        if pair.b_mean == 0:
            return TargetResult(name, None, "neither answered a request in the run")
        return TargetResult(name, True, f"{pair.b_mean:.1f} {unit} vs 0 (reference answered none)")
    detail = f"{pair.b_mean:.1f} / {pair.a_mean:.1f} {unit} = {pair.ratio:.2f}x ({rounds})"
    return TargetResult(name, target.passed(pair), detail)


def _tail(results: RunResults) -> TargetResult:
    name = (
        f"resnet18-224 p99 at c={TAIL_CONCURRENCY} <= {P99_OVER_P50:.0f} x p50, no errors but 503s"
    )
    point = results.find("blockserve", "resnet18-224", TAIL_CONCURRENCY)
    if point is None:
        return TargetResult(name, None, "not measured")
    load = point.load
    if load.ok == 0:
        return TargetResult(name, False, "no successful answer at this concurrency")
    ratio = load.p99_ms / load.p50_ms if load.p50_ms else float("inf")
    detail = (
        f"p99 {load.p99_ms:.0f} ms / p50 {load.p50_ms:.0f} ms = {ratio:.2f}; "
        f"{load.rejected} x 503, {load.failed} other errors"
    )
    return TargetResult(name, ratio <= P99_OVER_P50 and load.failed == 0, detail)

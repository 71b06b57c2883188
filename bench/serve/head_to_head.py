"""Each selected target measured in alternating rounds (bench/serving/paired.py): every server
a target needs is up at once, and whichever is not being measured is paused (SIGSTOP) unless it
cannot survive that (`ServerCase.pausable`), so an idle server's polling does not tax the
measured one."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import replace

from bench.serve.loads import READY_TIMEOUT_S, Bodies, LoadSpec, load_spec
from bench.serve.options import Options
from bench.serve.sweep import SERVER_ERRORS
from bench.serving.ceiling import EngineRig
from bench.serving.paired import HeadToHead, alternate
from bench.serving.processes import RunningServer, free_port_block, paused, running
from bench.serving.results import RunResults, ServerInfo
from bench.serving.servers import PORTS_PER_SERVER, SERVERS, ServerCase, Settings
from bench.serving.targets import IN_PROCESS, P50, Side, Target, side_label

# Each round's own warm-up, not counted: the queue refills after the pause; the servers are
# warm already from the discarded first round.
ROUND_WARMUP_S = 1.0


class Arena:
    """The servers the targets need, all started; measures one side with the others paused."""

    def __init__(
        self, stack: contextlib.ExitStack, options: Options, bodies: Bodies, rig: EngineRig | None
    ) -> None:
        self.stack, self.options, self.bodies, self.rig = stack, options, bodies, rig
        self.servers: dict[str, tuple[ServerCase, int, RunningServer]] = {}
        self.specs: dict[tuple[str, str, str], LoadSpec] = {}

    def start(self, name: str, settings: Settings) -> None:
        port = free_port_block(PORTS_PER_SERVER)
        case = SERVERS[name](settings, port)
        log_path = self.options.work / "logs" / f"{name}-head-to-head.log"
        server = self.stack.enter_context(running(name, case.launch, log_path, READY_TIMEOUT_S))
        self.servers[name] = (case, port, server)

    def body(self, side: Side) -> str:
        case, _, _ = self.servers[side.server]
        endpoint = case.endpoint(side.workload)
        if endpoint is None:
            raise ValueError(f"{side.server} does not serve {side.workload}")
        return side.body or endpoint.bodies[0]

    def measurement(self, side: Side, ceiling_batch: int | None) -> Callable[[], float]:
        others = [
            server
            for name, (case, _, server) in self.servers.items()
            if name != side.server and case.pausable
        ]
        if side.server == IN_PROCESS:
            rig, seconds = self.rig, self.options.round_seconds
            assert rig is not None and ceiling_batch is not None

            def in_process() -> float:
                with paused(*others):
                    if side.statistic == P50:
                        return rig.serial_ms(seconds)
                    return rig.throughput(
                        ceiling_batch, seconds, self.options.max_requests
                    ).throughput

            return in_process
        spec, label = self._spec(side), f"{side.server} [{self.body(side)}]"

        def served() -> float:
            with paused(*others):
                load = spec.run(side.concurrency, self.options.round_seconds)
            if load.failed:  # only 2xx answers count: say why a side measured little or nothing
                print(
                    f"   {label}: {load.failed} errors, answers by status {load.statuses}",
                    flush=True,
                )
            return load.p50_ms if side.statistic == P50 else load.throughput

        return served

    def _spec(self, side: Side) -> LoadSpec:
        body = self.body(side)
        key = (side.server, side.workload, body)
        if key not in self.specs:
            case, port, server = self.servers[side.server]
            endpoint = case.endpoint(side.workload)
            self.specs[key] = load_spec(
                server, port, endpoint, body, self.bodies,
                max_requests=self.options.max_requests,
                warmup_s=min(self.options.warmup_s, ROUND_WARMUP_S),
            )  # fmt: skip
        return self.specs[key]


def head_to_head(
    targets: list[Target],
    options: Options,
    settings: Settings,
    bodies: Bodies,
    rig: EngineRig | None,
    results: RunResults,
    deadline: float,
) -> None:
    print(
        f"== head to head: {options.rounds} alternating rounds of {options.round_seconds:g} s "
        f"per side, targets {', '.join(t.name for t in targets)}",
        flush=True,
    )
    needed = [
        side.server
        for target in targets
        for side in (target.ours, target.reference)
        if side.server != IN_PROCESS
    ]
    with contextlib.ExitStack() as stack:
        arena = Arena(stack, options, bodies, rig)
        for name in dict.fromkeys(needed):
            if name in results.servers and not results.ran(name):
                continue  # it failed in the sweep already
            try:
                arena.start(name, settings)
            except SERVER_ERRORS as error:
                info = results.servers.setdefault(name, ServerInfo(name, True, ""))
                info.error = str(error)
                print(f"   {name} FAILED: {error}", flush=True)
        for target in targets:
            if time.monotonic() > deadline:
                print("   --max-minutes reached: no more head-to-head targets", flush=True)
                return
            sides = (target.reference, target.ours)
            if any(s.server != IN_PROCESS and s.server not in arena.servers for s in sides):
                continue
            try:
                results.head_to_head.append(_compare(target, arena, results))
            except SERVER_ERRORS as error:
                print(f"   {target.name} FAILED: {error}", flush=True)


def _compare(target: Target, arena: Arena, results: RunResults) -> HeadToHead:
    ceiling = results.ceilings.get(target.reference.workload)
    batch = ceiling.best.batch_size if ceiling else None
    reference = arena.measurement(target.reference, batch)
    ours = arena.measurement(target.ours, batch)
    reference(), ours()  # warm-up round, discarded
    a_values, b_values = alternate(reference, ours, arena.options.rounds)
    reference_side = target.reference
    if reference_side.server != IN_PROCESS:
        reference_side = replace(reference_side, body=arena.body(reference_side))
    reference_label = side_label(results, reference_side)
    ours_label = f"blockserve [{arena.body(target.ours)}]"
    pair = HeadToHead(target.name, reference_label, ours_label, target.unit, a_values, b_values)
    rounds = ", ".join(f"{ratio:.2f}" for ratio in pair.round_ratios())
    print(
        f"   {target.name}: {pair.b_mean:.1f} vs {pair.a_mean:.1f} {pair.unit} "
        f"(blockserve ÷ {reference_label} {pair.ratio:.2f}; rounds {rounds})",
        flush=True,
    )
    return pair

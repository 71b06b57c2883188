"""One run's results, typed, and their JSON form (`--report` re-reads a saved run)."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from bench.serving.load import LoadResult
from bench.serving.paired import HeadToHead


@dataclass(frozen=True)
class CeilingPoint:
    batch_size: int
    images: int
    seconds: float

    @property
    def throughput(self) -> float:
        return self.images / self.seconds


@dataclass(frozen=True)
class Ceiling:
    """In-process decode + preprocess + engine of one model, per batch size."""

    model: str
    points: list[CeilingPoint]
    decode_ms: float  # median decode + preprocess of one image, one thread
    engine_b1_ms: float  # median runtime call at batch 1

    @property
    def best(self) -> CeilingPoint:
        return max(self.points, key=lambda point: point.throughput)


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    memory_gib: float
    kernel: str
    python: str


@dataclass(frozen=True)
class RunSettings:
    concurrency: list[int]
    duration_s: float
    warmup_s: float
    max_requests: int
    servers: list[str]
    workloads: list[str]
    targets: list[str]
    rounds: int
    round_seconds: float
    config: str


@dataclass
class RunMeta:
    started: str
    quick: bool
    command: str
    settings: RunSettings
    machine: Machine
    versions: dict[str, Any]  # package -> version; "peers" -> the peers' venv's versions
    load_average_start: list[float]
    load_average_end: list[float] | None = None
    finished: str | None = None
    wall_seconds: float | None = None


@dataclass
class ServerInfo:
    label: str
    peer: bool
    notes: str
    error: str | None = None  # could not start or measure: the run went on without it


@dataclass(frozen=True)
class Point:
    """One wrk run against one server, workload and body kind at one concurrency."""

    server: str
    workload: str
    body: str
    load: LoadResult
    mean_batch: float | None  # from blockserve's /metrics; None for peers
    load_average: float  # 1-minute, right after the run

    @property
    def concurrency(self) -> int:
        return self.load.concurrency

    @property
    def throughput(self) -> float:
        return self.load.throughput


@dataclass
class RunResults:
    meta: RunMeta
    ceilings: dict[str, Ceiling] = field(default_factory=dict)  # workload -> ceiling
    servers: dict[str, ServerInfo] = field(default_factory=dict)
    points: list[Point] = field(default_factory=list)
    head_to_head: list[HeadToHead] = field(default_factory=list)
    profile: dict[str, Any] | None = None  # bench.serving.profile.summarize's output

    def ran(self, server: str) -> bool:
        return server in self.servers and self.servers[server].error is None

    def find(self, server: str, workload: str, concurrency: int) -> Point | None:
        """The point of `server`'s first body kind for `workload` at `concurrency`."""
        return next(
            (
                p
                for p in self.points
                if (p.server, p.workload, p.concurrency) == (server, workload, concurrency)
            ),
            None,
        )

    def pair(self, name: str) -> HeadToHead | None:
        return next((h for h in self.head_to_head if h.name == name), None)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> RunResults:
        return _build(cls, json.loads(text))


def _build(kind: Any, data: Any) -> Any:
    """`data` (parsed JSON) as an instance of the annotation `kind`."""
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(
            **{
                f.name: _build(hints[f.name], data[f.name])
                for f in dataclasses.fields(kind)
                if f.name in data
            }
        )
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _build(inner, data)
    if origin is list:
        return [_build(args[0], item) for item in data]
    if origin is dict:
        return {key: _build(args[1], value) for key, value in data.items()}
    return data

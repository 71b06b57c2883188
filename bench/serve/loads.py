"""A server's workload as wrk load: its URL and the body files of one body kind."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.serving.bodies import write_bodies
from bench.serving.load import LoadResult, run_wrk
from bench.serving.processes import RunningServer, wait_ready
from bench.serving.servers import Endpoint
from bench.serving.workloads import WORKLOADS

READY_TIMEOUT_S = 600  # a first start exports resnet18 (cached afterwards)


@dataclass(frozen=True)
class LoadSpec:
    url: str
    body_list: Path
    max_requests: int
    warmup_s: float

    def run(self, concurrency: int, seconds: float) -> LoadResult:
        return run_wrk(
            self.url,
            self.body_list,
            concurrency=concurrency,
            seconds=seconds,
            max_requests=self.max_requests,
            warmup_s=self.warmup_s,
        )


class Bodies:
    """Body files per (corpus, body kind), written on first use."""

    def __init__(self, work: Path, corpora: dict[str, list[Path]]) -> None:
        self.work, self.corpora = work, corpora
        self.listings: dict[tuple[str, str], Path] = {}

    def listing(self, corpus: str, kind: str) -> Path:
        key = (corpus, kind)
        if key not in self.listings:
            directory = self.work / "bodies" / f"{corpus}-{kind}"
            self.listings[key] = write_bodies(self.corpora[corpus], kind, directory)
        return self.listings[key]


def load_spec(
    server: RunningServer,
    port: int,
    endpoint: Endpoint,
    body: str,
    bodies: Bodies,
    *,
    max_requests: int,
    warmup_s: float,
) -> LoadSpec:
    """Once the endpoint's model is ready: the load that posts `body` bodies to it."""
    base = f"http://127.0.0.1:{port}"
    if endpoint.ready_path:
        wait_ready(server, base + endpoint.ready_path, None, READY_TIMEOUT_S)
    listing = bodies.listing(WORKLOADS[endpoint.workload].corpus, body)
    return LoadSpec(base + endpoint.path, listing, max_requests, warmup_s)

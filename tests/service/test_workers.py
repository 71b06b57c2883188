"""`server.workers`: several serving processes on one port, supervised by the first."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from server_process import digits_config, serve
from service_fakes import png_bytes

DIGIT = png_bytes(np.zeros((8, 8), np.uint8))
PNG = {"content-type": "image/png"}
WORKERS = 2
REPLACED_FOR_S = 10.0  # covers a replacement worker's start and model load


def workers_of(pid: int) -> list[int]:
    """The worker processes of a supervisor (its children running the spawn entry point)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
        and b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def until(condition, timeout: float = 60) -> None:
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            raise TimeoutError("condition never became true")
        time.sleep(0.1)


def requests_while_replacing(base_url: str, supervisor: int, first: list[int]) -> list[int]:
    """Statuses of requests sent one after another, each on a new connection, from a worker's
    death until its replacement has run for `REPLACED_FOR_S` (bounded in time and count)."""
    statuses: list[int] = []
    give_up, replaced_at = time.monotonic() + 60, None
    while time.monotonic() < give_up and len(statuses) < 5000:
        if replaced_at is None and len(set(workers_of(supervisor)) - set(first)) == 1:
            replaced_at = time.monotonic()
        if replaced_at is not None and time.monotonic() - replaced_at > REPLACED_FOR_S:
            break
        with httpx.Client(base_url=base_url, timeout=30) as client:
            statuses.append(client.post("/predict", content=DIGIT, headers=PNG).status_code)
    return statuses


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_workers_share_the_port_replace_a_dead_worker_and_stop_cleanly(
    digits_weights, bundle_cache, tmp_path
):
    config = digits_config(tmp_path, digits_weights, bundle_cache, workers=WORKERS)
    with serve(config, tmp_path) as server:
        supervisor = server.process.pid
        until(lambda: len(workers_of(supervisor)) == WORKERS)
        first = workers_of(supervisor)
        before = {pid: cpu_ticks(pid) for pid in first}
        statuses = []
        for _ in range(300):  # a new connection each: the kernel spreads them over the workers
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                statuses.append(client.post("/predict", content=DIGIT, headers=PNG).status_code)
        busy = {pid: cpu_ticks(pid) - before[pid] for pid in first}

        os.kill(first[0], signal.SIGKILL)
        after_kill = requests_while_replacing(server.base_url, supervisor, first)
        replaced = workers_of(supervisor)

        server.process.send_signal(signal.SIGTERM)
        exit_code = server.wait_exit()

    assert statuses == [200] * 300
    assert all(ticks > 0 for ticks in busy.values()), busy  # both workers answered requests
    assert after_kill and set(after_kill) == {200}  # the new worker listens once it can answer
    assert len(replaced) == WORKERS and first[1] in replaced and first[0] not in replaced
    assert exit_code == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in replaced)

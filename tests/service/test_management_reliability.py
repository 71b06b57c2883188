"""Model management against a real server process (uvicorn, ONNX Runtime, two digits models):
load/unload cycles while another model serves steady load, memory after the cycles, and loads
that fail or are refused."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from server_process import ServerProcess, digits_config, serve

pytestmark = pytest.mark.slow

log = logging.getLogger(__name__)

TOKEN = "reliability-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STEADY = "digits"  # served from the config file all along
CYCLED = "cycled"  # loaded and unloaded through the API
# Large enough (47 MB of weights) that runtimes kept after an unload would show in the RSS.
CYCLED_CONFIG = {"arch": "resnet18", "preprocess": {"resize": 64, "crop": 64}}
CYCLES = 20
STEADY_CLIENTS = 4
RSS_TOLERANCE = 0.10
MAX_STEADY_SECONDS = 300  # the steady clients stop by then whatever happens
INFER_BODY = {
    "inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.5] * 64}]
}
CYCLED_BODY = {
    "inputs": [
        {"name": "input", "shape": [1, 3, 64, 64], "datatype": "FP32", "data": [0.5] * 3 * 64 * 64}
    ]
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, digits_weights, bundle_cache) -> Iterator[ServerProcess]:
    """The trained digits model served as `digits`; management needs `TOKEN`."""
    directory = tmp_path_factory.mktemp("reliability")
    config = digits_config(directory, digits_weights, bundle_cache)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BLOCKSERVE_API_TOKEN", TOKEN)
        env.setenv("BLOCKSERVE_HOME", str(directory / "home"))
        with serve(config, directory) as process:
            yield process


def load(client: httpx.Client, name: str, config: str) -> httpx.Response:
    body = {"parameters": {"config": config}}
    return client.post(f"/v2/repository/models/{name}/load", json=body, headers=AUTH)


def unload(client: httpx.Client, name: str) -> httpx.Response:
    return client.post(f"/v2/repository/models/{name}/unload", json={}, headers=AUTH)


def rss_bytes(pid: int) -> int:
    """The process's resident set size (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for process {pid}")


@dataclass
class SteadyLoad:
    """`STEADY_CLIENTS` clients sending V2 infer requests to `STEADY` until stopped (each
    at least one)."""

    base_url: str
    statuses: Counter[int | str] = field(default_factory=Counter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self) -> None:
        give_up = time.monotonic() + MAX_STEADY_SECONDS
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as client:
            while True:
                try:
                    answer = await client.post(f"/v2/models/{STEADY}/infer", json=INFER_BODY)
                    self.statuses[answer.status_code] += 1
                except httpx.TransportError as error:
                    self.statuses[type(error).__name__] += 1
                if self.stop.is_set() or time.monotonic() > give_up:
                    return

    async def run_while(self, work) -> None:
        """Run `work` (a blocking function) in a thread while the clients send requests."""
        clients = [asyncio.create_task(self.client()) for _ in range(STEADY_CLIENTS)]
        try:
            await asyncio.to_thread(work)
        finally:
            self.stop.set()
            await asyncio.gather(*clients)

    @property
    def failures(self) -> dict[int | str, int]:
        return {status: count for status, count in self.statuses.items() if status != 200}


async def test_load_unload_cycles_leave_the_steady_model_serving_and_memory_flat(server):
    pid = server.process.pid
    cycle_seconds: list[float] = []

    def cycle(client: httpx.Client) -> None:
        started = time.monotonic()
        loaded = load(client, CYCLED, json.dumps(CYCLED_CONFIG))
        assert loaded.status_code == 200, loaded.text
        infer = client.post(f"/v2/models/{CYCLED}/infer", json=CYCLED_BODY)
        assert infer.status_code == 200, infer.text
        unloaded = unload(client, CYCLED)
        assert unloaded.status_code == 200, unloaded.text
        assert client.post(f"/v2/models/{CYCLED}/infer", json=CYCLED_BODY).status_code == 404
        cycle_seconds.append(time.monotonic() - started)

    def warm_up() -> None:
        with httpx.Client(base_url=server.base_url, timeout=120) as client:
            cycle(client)

    def cycles() -> None:
        with httpx.Client(base_url=server.base_url, timeout=120) as client:
            for _ in range(CYCLES):
                cycle(client)

    warm_up_load = SteadyLoad(server.base_url)
    await warm_up_load.run_while(warm_up)
    before = rss_bytes(pid)
    steady = SteadyLoad(server.base_url)
    await steady.run_while(cycles)
    after = rss_bytes(pid)

    warm_up_seconds, *cycled_seconds = cycle_seconds
    log.warning(
        "RSS before %.1f MiB, after %d cycles %.1f MiB (%+.1f %%); cycle s: warm-up %.2f, "
        "median %.2f, max %.2f; steady answers %s",
        before / 2**20,
        CYCLES,
        after / 2**20,
        100 * (after / before - 1),
        warm_up_seconds,
        sorted(cycled_seconds)[CYCLES // 2],
        max(cycled_seconds),
        dict(steady.statuses),
    )
    assert len(cycled_seconds) == CYCLES
    assert steady.failures == {} and steady.statuses[200] > 0, steady.statuses
    assert warm_up_load.failures == {}, warm_up_load.statuses
    assert after <= before * (1 + RSS_TOLERANCE), (before, after)


async def test_a_failing_load_reports_why_and_leaves_every_other_model_serving(server, tmp_path):
    missing = tmp_path / "no-such-weights.safetensors"
    config = json.dumps({"arch": "resnet_digits", "weights": str(missing)})

    def failing_load() -> None:
        with httpx.Client(base_url=server.base_url, timeout=120) as client:
            answer = load(client, "broken", config)
            assert answer.status_code == 400, answer.text
            assert "no-such-weights.safetensors" in answer.json()["error"]

    steady = SteadyLoad(server.base_url)
    await steady.run_while(failing_load)

    assert steady.failures == {} and steady.statuses[200] > 0, steady.statuses
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        assert client.post(f"/v2/models/{STEADY}/infer", json=INFER_BODY).status_code == 200
        assert client.get(f"/v2/models/{STEADY}/ready").status_code == 200


@pytest.mark.parametrize(
    ("config", "field_named"),
    [
        ({"arch": "resnet_digits", "batching": {"max_batch_size": 0}}, "batching.max_batch_size"),
        ({"arch": "resnet_digits", "wieghts": "w.safetensors"}, "wieghts"),
        ({"arch": "resnet_digits", "format": "tflite"}, "format"),
    ],
)
def test_a_load_with_an_invalid_config_answers_400_naming_the_field(server, config, field_named):
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        answer = load(client, "invalid", json.dumps(config))
        steady = client.post(f"/v2/models/{STEADY}/infer", json=INFER_BODY)

    assert answer.status_code == 400, answer.text
    assert field_named in answer.json()["error"]
    assert steady.status_code == 200

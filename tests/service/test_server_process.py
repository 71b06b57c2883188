"""One real `blockserve serve` process (uvicorn + uvloop + httptools) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from service_fakes import png_bytes

from models.digits import load_digits_split

STARTUP_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(digits_weights, bundle_cache, tmp_path_factory):
    """`blockserve serve` on a free port with a one-image-per-batch digits model (so many
    images keep it busy long enough to be stopped mid-flight)."""
    directory = tmp_path_factory.mktemp("server")
    config = directory / "models.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"cache_dir": str(bundle_cache), "grpc": {"enabled": False}},
                "models": [
                    {
                        "name": "digits",
                        "arch": "resnet_digits",
                        "weights": str(digits_weights),
                        "batching": {"max_batch_size": 1, "max_queue": 4096},
                    }
                ],
            }
        )
    )
    port = free_port()
    command = [sys.executable, "-m", "service.cli", "serve", "--config", str(config),
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
    log = (directory / "server.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=Path.cwd())
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, process)
        yield process, base_url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        log.close()


def _wait_ready(base_url: str, process: subprocess.Popen) -> None:
    give_up = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise RuntimeError(f"blockserve serve exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"not ready within {STARTUP_TIMEOUT_S} s")


def test_held_out_digits_over_real_http(server):
    _, base_url = server
    split = load_digits_split()
    predicted = []
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for start in range(0, len(split.test_labels), 60):
            files = [
                ("files", (f"{i}.png", png_bytes(image), "image/png"))
                for i, image in enumerate(split.test_images[start : start + 60])
            ]
            response = client.post("/predict?top_k=1", files=files)
            assert response.status_code == 200
            predicted += [int(p[0]["label"]) for p in response.json()["predictions"]]
        corrupt = client.post("/predict", content=b"junk", headers={"content-type": "image/png"})

    assert np.mean(np.array(predicted) == split.test_labels) >= 0.95
    assert corrupt.status_code == 400 and "cannot identify" in corrupt.json()["error"]


def test_sigterm_answers_every_accepted_request_then_exits_cleanly(server):
    process, base_url = server
    body = png_bytes(np.zeros((8, 8), np.uint8))
    files = [("files", (f"{i}.png", body, "image/png")) for i in range(64)]

    async def load() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
            requests = [asyncio.create_task(client.post("/predict", files=files)) for _ in range(8)]
            while True:  # every request accepted and queued: the batcher is busy with them
                metrics = (await client.get("/metrics")).text
                depth = _gauge(metrics, "blockserve_queue_depth")
                if depth >= 64 or all(r.done() for r in requests):
                    break
                await asyncio.sleep(0.01)
            in_flight = sum(not r.done() for r in requests)
            process.send_signal(signal.SIGTERM)
            responses = await asyncio.gather(*requests)
            assert in_flight > 0
            return responses

    responses = asyncio.run(load())

    assert [r.status_code for r in responses] == [200] * 8
    assert all(len(r.json()["predictions"]) == 64 for r in responses)
    # uvicorn re-raises the signal once shut down, so the process ends "killed by SIGTERM".
    assert process.wait(timeout=60) in (0, -signal.SIGTERM)


def _gauge(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total

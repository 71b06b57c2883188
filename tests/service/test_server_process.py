"""One real `blockserve serve` process (uvicorn + uvloop + httptools) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import signal

import httpx
import numpy as np
import pytest
from server_process import digits_config, serve
from service_fakes import png_bytes

from models.digits import load_digits_split


@pytest.fixture(scope="module")
def server(digits_weights, bundle_cache, tmp_path_factory):
    """`blockserve serve` on a free port with a one-image-per-batch digits model (so many
    images keep it busy long enough to be stopped mid-flight)."""
    directory = tmp_path_factory.mktemp("server")
    batching = {"max_batch_size": 1, "max_queue": 4096}
    config = digits_config(directory, digits_weights, bundle_cache, batching=batching)
    with serve(config, directory) as running:
        yield running.process, running.base_url


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
    assert process.wait(timeout=60) == 0


def _gauge(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total

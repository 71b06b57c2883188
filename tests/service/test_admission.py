"""Admission before work: what a busy or overloaded server answers, and how fast.

A request is counted against its model's queue before its body is read; server-wide budgets
(bytes of bodies in flight, the decode backlog) refuse work before it starts; a deadline holds
while a request waits for or goes through decoding; small images never wait behind large ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
from service_fakes import FakeRuntime, fake_loader, png_bytes, repository_config

from service.app import create_app
from service.config import RepositoryConfig

DIGIT = png_bytes(np.zeros((8, 8), np.uint8))
PNG = {"content-type": "image/png"}
LARGE = png_bytes(np.zeros((256, 256), np.uint8))  # over `inline_max_pixels`: the decode pool


class RawClient:
    """Calls the app on raw ASGI, recording whether the body was ever asked for."""

    def __init__(self, app) -> None:
        self.app = app
        self.body_reads = 0

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
        sent: list[dict] = []
        delivered = False

        async def receive() -> dict:
            nonlocal delivered
            self.body_reads += 1
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client stays connected
            raise AssertionError("unreachable")

        async def send(message: dict) -> None:
            sent.append(message)

        raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
        raw_headers.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "headers": raw_headers,
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        await self.app(scope, receive, send)
        start = sent[0]
        return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


@contextlib.asynccontextmanager
async def served(
    config: RepositoryConfig, runtime: FakeRuntime
) -> AsyncIterator[tuple[httpx.AsyncClient, RawClient, object]]:
    app = create_app(config, loader=fake_loader(runtime))
    async with app.router.lifespan_context(app):
        await app.state.serving.repository.wait_loaded()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://blockserve") as client:
            yield client, RawClient(app), app.state.serving


async def until(condition) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise TimeoutError("condition never became true")


def blocked_decode_pool(serving) -> threading.Event:
    """Occupy every decode thread until the returned gate opens."""
    gate = threading.Event()
    threads = serving.config.server.decode_threads
    for _ in range(threads):
        serving.decoder.pool.submit(gate.wait, 30)
    return gate


async def test_a_full_model_answers_503_with_retry_after_before_reading_the_body(tmp_path):
    runtime = FakeRuntime(blocked=True, num_classes=10)
    config = repository_config(tmp_path, {"batching": {"max_batch_size": 1, "max_queue": 2}})
    async with served(config, runtime) as (client, raw, _):
        running = asyncio.create_task(client.post("/predict", content=DIGIT, headers=PNG))
        await asyncio.to_thread(runtime.wait_started)
        queued = [
            asyncio.create_task(client.post("/predict", content=DIGIT, headers=PNG))
            for _ in range(2)
        ]
        batcher = raw.app.state.serving.repository.get("digits").batchers[0]
        await until(lambda: batcher.queued_images == 2)

        status, headers = await raw.post("/predict", DIGIT, PNG)
        refused_reads = raw.body_reads
        runtime.gate.set()
        answers = [await request for request in (running, *queued)]

    assert (status, headers["retry-after"]) == (503, "1")
    assert refused_reads == 0  # refused before a byte of its body was read
    assert [answer.status_code for answer in answers] == [200, 200, 200]


async def test_requests_being_read_count_against_the_queue(tmp_path):
    runtime = FakeRuntime(num_classes=10)
    config = repository_config(tmp_path, {"batching": {"max_queue": 1}})
    async with served(config, runtime) as (client, _, serving):
        handle = serving.repository.get("digits")
        with handle.admission():  # one request admitted, its body still on its way
            refused = await client.post("/predict", content=DIGIT, headers=PNG)
        accepted = await client.post("/predict", content=DIGIT, headers=PNG)

    assert refused.status_code == 503
    assert "overloaded" in refused.json()["error"]
    assert accepted.status_code == 200


async def test_bodies_over_the_servers_byte_budget_are_refused_before_reading(tmp_path):
    runtime = FakeRuntime(num_classes=10)
    config = repository_config(tmp_path, {}, limits={"max_inflight_body_bytes": 1000})
    async with served(config, runtime) as (client, raw, serving):
        serving.bodies.reserve(900)  # other requests hold most of the budget
        status, headers = await raw.post("/predict", DIGIT + b"\0" * 200, PNG)
        refused_reads = raw.body_reads
        serving.bodies.release(900)
        accepted = await client.post("/predict", content=DIGIT, headers=PNG)
        held_after = serving.bodies.held

    assert (status, headers["retry-after"], refused_reads) == (503, "1", 0)
    assert accepted.status_code == 200
    assert held_after == 0  # every answered request gave its bytes back


async def test_a_full_decode_backlog_answers_503(tmp_path):
    runtime = FakeRuntime(num_classes=10)
    server = {"decode_threads": 1, "limits": {"max_decode_backlog": 1}}
    config = repository_config(tmp_path, {}, **server)
    async with served(config, runtime) as (client, _, serving):
        gate = blocked_decode_pool(serving)
        serving.decoder.submitted += 1  # the blocking task, counted as the pool's running work
        waiting = asyncio.create_task(client.post("/predict", content=LARGE, headers=PNG))
        await until(lambda: serving.decoder.submitted == 2)
        refused = await client.post("/predict", content=LARGE, headers=PNG)
        gate.set()
        serving.decoder.submitted -= 1
        waited = await waiting

    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "waiting for a decode thread" in refused.json()["error"]
    assert waited.status_code == 200


async def test_the_deadline_holds_while_waiting_for_a_decode_thread(tmp_path):
    runtime = FakeRuntime(num_classes=10)
    config = repository_config(tmp_path, {}, decode_threads=1)
    async with served(config, runtime) as (client, _, serving):
        gate = blocked_decode_pool(serving)
        timed = await client.post(
            "/predict", content=LARGE, headers={**PNG, "x-request-timeout-ms": "50"}
        )
        still_blocked = not gate.is_set()
        gate.set()

    assert still_blocked  # answered while the pool was still busy, not after it
    assert timed.status_code == 504
    assert timed.json()["error"] == "deadline exceeded while waiting for or during decoding"
    assert runtime.seen == []


async def test_small_images_are_decoded_while_large_ones_hold_the_decode_pool(tmp_path):
    runtime = FakeRuntime(num_classes=10)
    config = repository_config(tmp_path, {}, decode_threads=1)
    async with served(config, runtime) as (client, _, serving):
        gate = blocked_decode_pool(serving)
        large = asyncio.create_task(client.post("/predict", content=LARGE, headers=PNG))
        await until(lambda: serving.decoder.submitted == 1)
        small = await client.post("/predict", content=DIGIT, headers=PNG)
        large_waiting = not large.done()
        gate.set()
        large_answer = await large

    assert small.status_code == 200
    assert large_waiting
    assert large_answer.status_code == 200


async def test_a_loading_model_answers_503_with_retry_after(tmp_path):
    runtime = FakeRuntime(num_classes=10)
    gate = threading.Event()
    config = repository_config(tmp_path, {})
    app = create_app(config, loader=fake_loader(runtime, gate=gate))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://blockserve") as client:
            loading = await client.post("/predict", content=DIGIT, headers=PNG)
            v2 = await client.post("/v2/models/digits/infer", json={"inputs": []})
        gate.set()

    assert loading.status_code == 503 and loading.headers["retry-after"] == "1"
    assert loading.json()["error"] == "model 'digits' is not ready (LOADING)"
    assert v2.status_code == 503 and v2.headers["retry-after"] == "1"


@pytest.mark.parametrize("path", ["/models/{}/predict", "/v2/models/{}/infer"])
async def test_unknown_model_names_are_quoted_back_truncated(tmp_path, path):
    runtime = FakeRuntime(num_classes=10)
    name = "x" * 5000
    async with served(repository_config(tmp_path, {}), runtime) as (client, _, _serving):
        answer = await client.post(path.format(name), content=DIGIT, headers=PNG)

    assert answer.status_code == 404
    assert answer.json()["error"] == (
        f"unknown model {'x' * 64!r}... (5000 characters); available models: 'digits'"
    )

"""Readiness (`server.strict_readiness`, draining) and `server.docs_enabled`, in-process."""

from __future__ import annotations

import pytest
from service_fakes import FakeRuntime, fake_loader, in_process, repository_config

DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")


def two_models(tmp_path, **server):
    return repository_config(tmp_path, {}, {"name": "second", "arch": "resnet_digits"}, **server)


async def readiness(client) -> tuple[int, int, str | None]:
    ready = await client.get("/health/ready")
    v2_ready = await client.get("/v2/health/ready")
    return ready.status_code, v2_ready.status_code, ready.json().get("reason")


async def test_strict_readiness_waits_for_every_model(tmp_path):
    loader = fake_loader(FakeRuntime(), failures={"second": "weights exploded"})
    async with in_process(two_models(tmp_path), loader) as (client, _):
        status, v2_status, reason = await readiness(client)

    assert (status, v2_status) == (503, 400)
    assert (
        reason
        == "models not ready: second FAILED (RuntimeError while loading (see the server log))"
    )


async def test_without_strict_readiness_the_default_model_decides(tmp_path):
    loader = fake_loader(FakeRuntime(), failures={"second": "weights exploded"})
    config = two_models(tmp_path, strict_readiness=False)
    async with in_process(config, loader) as (client, _):
        status, v2_status, _ = await readiness(client)

    assert (status, v2_status) == (200, 200)


async def test_without_strict_readiness_only_the_default_model_is_named(tmp_path):
    failures = {"digits": "weights exploded", "second": "weights exploded"}
    config = two_models(tmp_path, strict_readiness=False)
    async with in_process(config, fake_loader(FakeRuntime(), failures=failures)) as (client, _):
        status, v2_status, reason = await readiness(client)

    assert (status, v2_status) == (503, 400)
    assert (
        reason
        == "models not ready: digits FAILED (RuntimeError while loading (see the server log))"
    )


async def test_draining_turns_readiness_false_and_still_serves(tmp_path):
    async with in_process(two_models(tmp_path), fake_loader(FakeRuntime())) as (client, serving):
        before = await readiness(client)
        serving.repository.drain()
        after = await readiness(client)
        models = await client.get("/models")

    assert before[:2] == (200, 200)
    assert after == (503, 400, "shutting down")
    assert models.status_code == 200


@pytest.mark.parametrize("enabled", [True, False])
async def test_docs_enabled_switches_docs_redoc_and_openapi(tmp_path, enabled):
    config = repository_config(tmp_path, docs_enabled=enabled)
    async with in_process(config, fake_loader(FakeRuntime())) as (client, _):
        statuses = [(await client.get(path)).status_code for path in DOCS_PATHS]

    assert statuses == [200 if enabled else 404] * len(DOCS_PATHS)

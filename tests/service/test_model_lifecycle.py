"""Models loaded and unloaded at run time: versions, the atomic switch, draining unloads."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from service_fakes import FakeRuntime, fake_loader, repository_config

from service.config import ModelConfig, VersionPolicy
from service.errors import InvalidInput, ModelNotFound, ModelNotReady, ModelVersionNotFound
from service.repository import ModelRepository, ModelState

BATCH = np.zeros((1, 1, 8, 8), np.float32)


def digits(version: int | None = None, **fields) -> ModelConfig:
    return ModelConfig(name="digits", arch="resnet_digits", version=version, **fields)


@pytest.fixture
async def served(tmp_path, metrics):
    """A repository serving digits version 1 over `runtime`, loaded."""
    runtime = FakeRuntime(num_classes=10)
    repository = ModelRepository(
        repository_config(tmp_path, {}), metrics, loader=fake_loader(runtime)
    )
    repository.start()
    await repository.wait_loaded()
    yield repository, runtime
    await repository.close()


async def test_a_loaded_version_takes_over_requests_that_name_none(served):
    repository, _ = served

    handle = await repository.load(digits())

    assert handle.version == "2" and handle.state is ModelState.READY
    assert repository.get("digits") is handle
    # the default policy serves the latest version only: version 1 was unloaded
    assert repository.version_names("digits") == ["2"]
    with pytest.raises(ModelVersionNotFound, match="no version '1'; versions: 2"):
        repository.get("digits", "1")


async def test_the_old_version_serves_until_the_new_one_is_ready(tmp_path, metrics):
    gate = threading.Event()
    runtime = FakeRuntime(num_classes=10)
    loader = fake_loader(runtime)
    repository = ModelRepository(repository_config(tmp_path, {}), metrics, loader=loader)
    repository.start()
    await repository.wait_loaded()
    old = repository.get("digits")

    def gated(config, server, progress):
        if config.version == 2 and not gate.wait(timeout=30):
            raise TimeoutError("gate never opened")
        return loader(config, server, progress)

    repository._loader = gated
    loading = asyncio.create_task(repository.load(digits()))
    await asyncio.sleep(0.05)
    assert repository.get("digits") is old  # still serving while version 2 loads
    assert await repository.get("digits").infer(BATCH) is not None
    gate.set()
    new = await loading

    assert repository.get("digits") is new and old.state is ModelState.UNAVAILABLE
    await repository.close()


async def test_policy_all_keeps_every_version_addressable(served):
    repository, _ = served

    await repository.load(digits(version_policy=VersionPolicy(all=True)))

    assert repository.version_names("digits") == ["1", "2"]
    assert repository.get("digits").version == "2"
    assert repository.get("digits", "1").state is ModelState.READY


async def test_a_specific_policy_refuses_versions_it_does_not_list(served):
    repository, _ = served

    with pytest.raises(InvalidInput, match="version 3 is outside its version_policy"):
        await repository.load(digits(3, version_policy=VersionPolicy(specific=[1, 2])))


async def test_a_failed_load_leaves_the_served_version_and_reports_why(tmp_path, metrics):
    runtime = FakeRuntime(num_classes=10)
    loader = fake_loader(runtime, failures={"digits": "no such weights"})
    repository = ModelRepository(
        repository_config(tmp_path, {}), metrics, loader=fake_loader(runtime)
    )
    repository.start()
    await repository.wait_loaded()
    repository._loader = loader

    failed = await repository.load(digits())

    assert failed.state is ModelState.FAILED and "RuntimeError" in failed.reason
    assert repository.get("digits").version == "1"
    assert repository.model("digits").last_error == failed.reason
    await repository.close()


async def test_unloading_answers_what_is_queued_and_refuses_what_comes_after(served):
    repository, runtime = served
    handle = repository.get("digits")
    runtime.gate.clear()
    running = asyncio.create_task(handle.infer(BATCH))
    await asyncio.to_thread(runtime.wait_started)
    queued = asyncio.create_task(handle.infer(BATCH))
    await asyncio.sleep(0)

    unloading = asyncio.create_task(repository.unload("digits"))
    await asyncio.sleep(0)
    with pytest.raises(ModelNotFound, match="unknown model 'digits'"):
        repository.get("digits")
    with pytest.raises(ModelNotReady, match="UNLOADING"):
        handle.submit(BATCH)
    runtime.gate.set()
    await unloading

    assert (await running).shape == (1, 10) and (await queued).shape == (1, 10)
    assert handle.state is ModelState.UNAVAILABLE and handle.loaded is None
    assert repository.unloaded == {"digits": "unloaded"}


async def test_a_model_can_be_loaded_again_after_its_unload(served):
    repository, _ = served
    await repository.unload("digits")

    handle = await repository.load(digits())

    assert handle.version == "1" and repository.unloaded == {}
    assert (await repository.get("digits").infer(BATCH)).shape == (1, 10)


async def test_a_new_model_becomes_servable_and_can_be_the_default(served):
    repository, _ = served

    await repository.load(ModelConfig(name="other", arch="resnet_digits"))
    repository.set_default("other")

    assert repository.names == ["digits", "other"] and repository.get().name == "other"
    with pytest.raises(ModelNotFound):
        repository.set_default("nope")


async def test_the_state_gauge_follows_loads_and_unloads(served, metrics):
    repository, _ = served

    await repository.load(digits())

    def state(version: str, name: str) -> float:
        labels = {"model": "digits", "version": version, "blockserve_model_state": name}
        return metrics.registry.get_sample_value("blockserve_model_state", labels)

    assert state("1", "UNAVAILABLE") == 1 and state("1", "READY") == 0
    assert state("2", "READY") == 1

"""Run-time model changes survive a restart: the state file, its atomic writes, the overlay."""

from __future__ import annotations

import json
import os

import pytest
from service_fakes import FakeRuntime, fake_loader, in_process, repository_config

from service.config import ConfigError, ModelConfig
from service.management import ModelManager
from service.model_store import ManagedState, ModelStore, overlay
from service.repository import ModelRepository

TOKEN = "store-tests-token"


async def manager_for(config, metrics, store) -> ModelManager:
    repository = ModelRepository(config, metrics, loader=fake_loader(FakeRuntime(num_classes=10)))
    repository.start()
    await repository.wait_loaded()
    return ModelManager(repository, store)


async def test_changes_made_at_run_time_are_served_again_after_a_restart(tmp_path, metrics):
    config = repository_config(tmp_path, {}, {"name": "old"})
    store = ModelStore(tmp_path / "state")
    manager = await manager_for(config, metrics, store)
    await manager.load(ModelConfig(name="new", arch="resnet_digits", top_k=2))
    await manager.load(ModelConfig(name="digits", arch="resnet_digits", top_k=4))
    await manager.unload("old")
    await manager.set_default("new")
    await manager.repository.close()

    restarted = overlay(config, ModelStore(tmp_path / "state").read())

    served = {(model.name, model.version): model.top_k for model in restarted.models}
    assert served == {("digits", 2): 4, ("new", 1): 2}
    assert restarted.default_model == "new"


def test_names_the_store_never_changed_come_from_the_config(tmp_path):
    config = repository_config(tmp_path, {}, {"name": "kept", "top_k": 3})
    state = ManagedState(models={"digits": None})

    restarted = overlay(config, state)

    assert [(model.name, model.top_k) for model in restarted.models] == [("kept", 3)]
    assert restarted.default_model == "kept"  # the stored default is gone with its model


def test_a_crash_mid_write_leaves_the_old_state_whole(tmp_path, monkeypatch):
    store = ModelStore(tmp_path)
    store.write(ManagedState(default="a"))

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        store.write(ManagedState(default="b"))

    assert store.read().default == "a"
    assert [path.name for path in tmp_path.iterdir()] == ["models.json"]  # no partial left


def test_an_unreadable_state_file_is_a_config_error_naming_it(tmp_path):
    (tmp_path / "models.json").write_text("{not json")

    with pytest.raises(ConfigError, match=r"models\.json: cannot read the stored model state"):
        ModelStore(tmp_path).read()
    (tmp_path / "models.json").write_text(json.dumps({"schema": 99}))
    with pytest.raises(ConfigError, match="not a blockserve model state"):
        ModelStore(tmp_path).read()


async def test_a_failed_load_is_not_recorded(tmp_path, metrics):
    config = repository_config(tmp_path, {})
    store = ModelStore(tmp_path / "state")
    manager = await manager_for(config, metrics, store)
    manager.repository._loader = fake_loader(FakeRuntime(), failures={"bad": "broken"})

    await manager.load(ModelConfig(name="bad", arch="resnet_digits"))
    await manager.repository.close()

    assert store.read().models == {}


async def test_the_app_serves_what_its_state_dir_recorded(tmp_path):
    config = repository_config(tmp_path, {}, state_dir=str(tmp_path / "state"))
    loader = fake_loader(FakeRuntime(num_classes=10))
    async with in_process(config, loader) as (_, serving):
        await serving.manager.load(ModelConfig(name="added", arch="resnet_digits"))

    async with in_process(config, loader) as (client, serving):
        listed = (await client.get("/models")).json()

    assert [(model["name"], model["state"]) for model in listed["models"]] == [
        ("digits", "READY"),
        ("added", "READY"),
    ]


async def test_api_changes_are_refused_with_several_workers_naming_why(tmp_path):
    config = repository_config(tmp_path, {}, workers=2, auth={"token": TOKEN})
    async with in_process(config, fake_loader(FakeRuntime(num_classes=10))) as (client, _):
        answer = await client.put(
            "/models/other",
            json={"arch": "resnet_digits"},
            headers={"authorization": f"Bearer {TOKEN}"},
        )

    assert answer.status_code == 409
    assert "server.workers: 2" in answer.json()["error"]

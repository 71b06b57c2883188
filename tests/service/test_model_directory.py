"""A model repository directory filled by hand: scanned into configs, broken model directories
reported, and followed in poll mode (one rescan at a time through `ModelDirectory.step`)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import yaml
from service_fakes import FakeRuntime, fake_loader, in_process, repository_config

from service.config import ConfigError, ModelRepositoryDir
from service.management import ModelManager
from service.model_directory import ModelDirectory, join, scan
from service.model_store import ModelStore
from service.repository import ModelRepository, ModelState


def write_yaml(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def write_weights(directory: Path, content: bytes = b"weights") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "weights.safetensors"
    path.write_bytes(content)
    return path


DIGITS = {"arch": "resnet_digits"}


def checking_loader(runtime: FakeRuntime):
    """The fake loader, failing like the real one when the configured weights are missing."""
    load = fake_loader(runtime)

    def loader(config, server, progress):
        if config.weights is not None and not config.weights.is_file():
            raise FileNotFoundError(f"weights file {config.weights} not found")
        return load(config, server, progress)

    return loader


# -- scanning ------------------------------------------------------------------------------


def test_numbered_subdirectories_are_versions_with_their_weights_and_overrides(tmp_path):
    write_yaml(
        tmp_path / "digits" / "config.yaml",
        {**DIGITS, "version_policy": {"all": True}, "batching": {"max_delay_ms": 5}},
    )
    one = write_weights(tmp_path / "digits" / "1")
    two = write_weights(tmp_path / "digits" / "2")
    write_yaml(tmp_path / "digits" / "2" / "config.yaml", {"batching": {"max_batch_size": 4}})
    (tmp_path / "digits" / "notes").mkdir()  # not a number: ignored
    (tmp_path / ".hidden").mkdir()

    models = scan(tmp_path)

    assert list(models) == ["digits"]
    versions = models["digits"].versions
    assert list(versions) == [1, 2]
    assert [v.config.weights for v in versions.values()] == [one, two]
    assert all(v.config.name == "digits" for v in versions.values())
    assert [v.config.version for v in versions.values()] == [1, 2]
    assert versions[1].config.batching.max_batch_size == 16  # the default
    assert versions[2].config.batching.max_batch_size == 4
    assert versions[2].config.batching.max_delay_ms == 5  # merged, not replaced


def test_the_version_policy_picks_the_versions_served(tmp_path):
    write_yaml(tmp_path / "digits" / "config.yaml", DIGITS)  # default: the latest
    for number in (1, 2, 3):
        write_weights(tmp_path / "digits" / str(number))

    assert list(scan(tmp_path)["digits"].versions) == [3]


def test_a_model_directory_without_versions_is_version_1(tmp_path):
    write_yaml(tmp_path / "digits" / "config.yaml", DIGITS)
    weights = write_weights(tmp_path / "digits")

    (version,) = scan(tmp_path)["digits"].versions.items()

    assert version[0] == 1 and version[1].config.weights == weights


def test_relative_paths_resolve_against_the_file_that_names_them(tmp_path):
    write_yaml(
        tmp_path / "digits" / "config.yaml",
        {**DIGITS, "weights": "shared.safetensors", "version_policy": {"all": True}},
    )
    write_yaml(tmp_path / "digits" / "1" / "config.yaml", {"weights": "own.safetensors"})
    (tmp_path / "digits" / "2").mkdir()
    write_weights(tmp_path / "digits" / "3")

    versions = scan(tmp_path)["digits"].versions

    assert versions[1].config.weights == tmp_path / "digits" / "1" / "own.safetensors"
    assert versions[2].config.weights == tmp_path / "digits" / "shared.safetensors"
    assert versions[3].config.weights == tmp_path / "digits" / "3" / "weights.safetensors"


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({}, "digits/config.yaml: missing"),
        ({"config.yaml": "arch: [unclosed"}, "digits/config.yaml: not valid YAML"),
        ({"config.yaml": "- a list"}, "digits/config.yaml: expected a mapping"),
        ({"config.yaml": {"arch": "resnet_digits", "name": "x"}}, "digits/config.yaml: name:"),
        ({"config.yaml": {"arch": "resnet_digits", "wieghts": "w"}}, "digits/config.yaml: wieghts"),
        ({"config.yaml": {**DIGITS, "top_k": 0}}, "digits/config.yaml: top_k"),
        (
            {"config.yaml": DIGITS, "2/config.yaml": {"batching": {"max_queue": 0}}},
            "digits/config.yaml + digits/2/config.yaml: batching.max_queue",
        ),
        (
            {"config.yaml": {**DIGITS, "version_policy": {"specific": [7]}}, "1/x": "x"},
            "digits/config.yaml: version_policy selects none of the versions 1",
        ),
    ],
)
def test_a_broken_model_directory_gets_a_reason_naming_the_file(tmp_path, files, reason):
    (tmp_path / "digits").mkdir()
    for name, content in files.items():
        write_yaml(tmp_path / "digits" / name, content)
    write_yaml(tmp_path / "fine" / "config.yaml", DIGITS)

    models = scan(tmp_path)

    assert models["digits"].versions == {} and reason in (models["digits"].error or "")
    assert models["fine"].error is None


def test_a_directory_whose_name_is_no_model_name_is_reported(tmp_path):
    write_yaml(tmp_path / "bad name" / "config.yaml", DIGITS)

    assert "bad name: not a model name" in (scan(tmp_path)["bad name"].error or "")


def test_an_unreadable_repository_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the model repository"):
        scan(tmp_path / "missing")


# -- joining the config file ---------------------------------------------------------------


def test_the_directory_wins_over_the_config_file_unless_it_is_broken(tmp_path):
    config = repository_config(tmp_path, {"name": "digits"}, {"name": "other"}, {"name": "kept"})
    write_yaml(tmp_path / "repo" / "digits" / "config.yaml", {**DIGITS, "top_k": 3})
    (tmp_path / "repo" / "other").mkdir(parents=True)  # broken: no config.yaml
    write_yaml(tmp_path / "repo" / "new" / "config.yaml", DIGITS)

    joined = join(config, scan(tmp_path / "repo"))

    by_name = {entry.name: entry for entry in joined.models}
    assert sorted(by_name) == ["digits", "kept", "new", "other"]
    assert by_name["digits"].top_k == 3  # the directory's
    assert by_name["other"].top_k == 5  # the config file's: the directory's cannot be read
    assert joined.default_model == "digits"


def test_a_config_file_without_models_needs_the_directory(tmp_path):
    config = repository_config(tmp_path).model_copy(update={"models": []})

    with pytest.raises(ConfigError, match="no models"):
        join(config, {})


# -- serving -------------------------------------------------------------------------------


async def test_the_server_serves_the_directory_and_shows_broken_models_as_failed(tmp_path):
    repo = tmp_path / "repo"
    write_yaml(repo / "digits" / "config.yaml", DIGITS)
    write_yaml(repo / "broken" / "config.yaml", {**DIGITS, "batching": {"max_queue": -1}})
    config = repository_config(tmp_path, model_repository={"path": str(repo)})
    config = config.model_copy(update={"models": []})
    runtime = FakeRuntime(num_classes=10)

    async with in_process(config, fake_loader(runtime)) as (client, serving):
        answer = await client.post("/v2/models/digits/infer", json=_digits_request())
        listing = await client.get("/models")
        broken = serving.repository.get("broken")

    assert answer.status_code == 200
    assert listing.status_code == 200 and "broken/config.yaml: batching" in listing.text
    assert broken.state is ModelState.FAILED
    assert "broken/config.yaml: batching.max_queue" in (broken.reason or "")


def _digits_request() -> dict:
    return {
        "inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0] * 64}]
    }


# -- poll mode -----------------------------------------------------------------------------


@pytest.fixture
async def following(tmp_path, metrics):
    """A repository serving `kept` from the config file and the directory `repo`, and the
    `ModelDirectory` following it (stepped by the test)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    write_yaml(repo / "digits" / "config.yaml", DIGITS)
    write_weights(repo / "digits" / "1")
    settings = ModelRepositoryDir(path=repo, poll_interval_s=0)
    directory = ModelDirectory(settings)
    config = directory.join(repository_config(tmp_path, {"name": "kept"}))
    repository = ModelRepository(config, metrics, loader=checking_loader(FakeRuntime()))
    manager = ModelManager(repository, None)
    repository.start()
    directory.start(manager)
    await repository.wait_loaded()
    yield repo, directory, manager, repository
    await directory.stop()
    await repository.close()


def served(repository: ModelRepository) -> dict[str, list[tuple[str, str]]]:
    return {
        name: [(h.version, str(h.state)) for h in repository.model(name).ordered()]
        for name in repository.names
    }


async def test_an_unchanged_directory_changes_nothing(following):
    _, directory, manager, repository = following
    before = repository.get("digits")

    await directory.step(manager)

    assert repository.get("digits") is before
    assert served(repository) == {"kept": [("1", "READY")], "digits": [("1", "READY")]}


async def test_a_new_model_directory_is_loaded(following):
    repo, directory, manager, repository = following
    write_yaml(repo / "added" / "config.yaml", DIGITS)

    await directory.step(manager)

    assert served(repository)["added"] == [("1", "READY")]


async def test_a_new_version_directory_replaces_the_old_version(following):
    repo, directory, manager, repository = following
    write_weights(repo / "digits" / "2")

    await directory.step(manager)

    assert served(repository)["digits"] == [("2", "READY")]


async def test_changed_weights_reload_the_version(following):
    repo, directory, manager, repository = following
    before = repository.get("digits")
    weights = repo / "digits" / "1" / "weights.safetensors"
    status = weights.stat()
    os.utime(weights, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))

    await directory.step(manager)

    after = repository.get("digits")
    assert after is not before and after.state is ModelState.READY
    assert before.state is ModelState.UNAVAILABLE


async def test_a_changed_config_reloads_with_it(following):
    repo, directory, manager, repository = following
    write_yaml(repo / "digits" / "config.yaml", {**DIGITS, "top_k": 2})

    await directory.step(manager)

    assert repository.get("digits").config.top_k == 2


async def test_a_failing_reload_leaves_the_old_version_serving(following):
    repo, directory, manager, repository = following
    before = repository.get("digits")
    write_yaml(repo / "digits" / "1" / "config.yaml", {"weights": "gone.safetensors"})

    await directory.step(manager)

    assert repository.get("digits") is before and before.state is ModelState.READY
    assert "gone.safetensors not found" in (repository.model("digits").last_error or "")


async def test_a_new_version_that_fails_leaves_the_version_it_replaces_serving(following):
    repo, directory, manager, repository = following
    (repo / "digits" / "1").rename(repo / "digits" / "2")
    (repo / "digits" / "2" / "weights.safetensors").unlink()
    write_yaml(repo / "digits" / "2" / "config.yaml", {"weights": "gone.safetensors"})

    await directory.step(manager)

    assert served(repository)["digits"] == [("1", "READY")]
    assert "gone.safetensors not found" in (repository.model("digits").last_error or "")


async def test_a_model_directory_that_breaks_keeps_serving_and_records_why(following):
    repo, directory, manager, repository = following
    before = repository.get("digits")
    write_yaml(repo / "digits" / "config.yaml", "arch: [unclosed")

    await directory.step(manager)

    assert repository.get("digits") is before and before.state is ModelState.READY
    assert "digits/config.yaml: not valid YAML" in (repository.model("digits").last_error or "")


async def test_a_broken_model_directory_once_fixed_is_served(following):
    repo, directory, manager, repository = following
    (repo / "later").mkdir()
    await directory.step(manager)
    assert served(repository)["later"] == [("1", "FAILED")]
    assert "later/config.yaml: missing" in (repository.get("later").reason or "")

    write_yaml(repo / "later" / "config.yaml", DIGITS)
    await directory.step(manager)

    assert served(repository)["later"] == [("1", "READY")]


async def test_a_removed_model_directory_is_unloaded_and_others_stay(following):
    repo, directory, manager, repository = following
    handle = repository.get("digits")
    for path in sorted((repo / "digits").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (repo / "digits").rmdir()

    await directory.step(manager)

    assert repository.names == ["kept"] and handle.state is ModelState.UNAVAILABLE


async def test_a_removed_version_directory_is_unloaded(following):
    repo, directory, manager, repository = following
    write_yaml(repo / "digits" / "config.yaml", {**DIGITS, "version_policy": {"all": True}})
    write_weights(repo / "digits" / "2")
    await directory.step(manager)
    assert served(repository)["digits"] == [("1", "READY"), ("2", "READY")]

    (repo / "digits" / "2" / "weights.safetensors").unlink()
    (repo / "digits" / "2").rmdir()
    await directory.step(manager)

    assert served(repository)["digits"] == [("1", "READY")]


async def test_directory_changes_are_not_recorded_as_run_time_state(tmp_path, metrics):
    repo = tmp_path / "repo"
    write_yaml(repo / "digits" / "config.yaml", DIGITS)
    directory = ModelDirectory(ModelRepositoryDir(path=repo))
    config = directory.join(repository_config(tmp_path, {"name": "kept"}))
    repository = ModelRepository(config, metrics, loader=fake_loader(FakeRuntime()))
    store = ModelStore(tmp_path / "state")
    manager = ModelManager(repository, store)
    repository.start()
    directory.start(manager)
    await repository.wait_loaded()
    write_yaml(repo / "added" / "config.yaml", DIGITS)

    await directory.step(manager)

    assert "added" in repository.names and store.read().models == {}
    await repository.close()


async def test_polling_outlives_failed_rescans_and_stops_with_the_server(following, monkeypatch):
    _, _, manager, _ = following
    directory = ModelDirectory(ModelRepositoryDir(path=Path("/no/such/repo"), poll_interval_s=1e-3))
    rescans: list[str] = []
    two_failed = asyncio.Event()
    step = directory.step

    async def counting_step(manager):
        try:
            await step(manager)
        except ConfigError as error:
            rescans.append(str(error))
            if len(rescans) == 2:
                two_failed.set()
            raise

    monkeypatch.setattr(directory, "step", counting_step)
    directory.start(manager)
    await asyncio.wait_for(two_failed.wait(), timeout=30)
    await asyncio.wait_for(directory.stop(), timeout=30)

    assert all("cannot read the model repository" in rescan for rescan in rescans)

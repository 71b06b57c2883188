"""The model repository: concurrent loading, states, routing, the shared entry point, draining."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from service_fakes import FakeRuntime, fake_loader, images, in_process, png_bytes, repository_config

from models.export import FORMATS
from models.files import atomic_path, file_sha256
from models.recipes import RECIPES, WeightsRecipe
from service.errors import InvalidInput, ModelNotFound, ModelNotReady
from service.repository import ModelRepository, ModelState, load_model, runtime_options

DIGIT_BATCH = np.zeros((1, 1, 8, 8), np.float32)


@pytest.fixture
async def repository(tmp_path, metrics):
    created: list[ModelRepository] = []

    async def make(config, loader) -> ModelRepository:
        repository = ModelRepository(config, metrics, loader=loader)
        repository.start()
        created.append(repository)
        return repository

    yield make
    for repository in created:
        await repository.close()


async def test_models_load_concurrently(tmp_path, repository):
    both_loading = threading.Barrier(2, timeout=10)
    base = fake_loader(FakeRuntime())

    def loader(config, server, progress):
        both_loading.wait()  # raises BrokenBarrierError unless the two loads overlap
        return base(config, server, progress)

    config = repository_config(tmp_path, {}, {"name": "second"})
    models = await repository(config, loader)
    await models.wait_loaded()

    assert [h.state for h in models.handles] == [ModelState.READY, ModelState.READY]


async def test_get_unknown_model_lists_the_available_ones(tmp_path, repository):
    models = await repository(repository_config(tmp_path, {}), fake_loader(FakeRuntime()))
    with pytest.raises(ModelNotFound) as error:
        models.get("nope")
    assert error.value.available == ["digits"]
    assert models.get().name == "digits"


async def test_infer_before_ready_and_with_a_wrong_shape_raise_typed_errors(tmp_path, repository):
    gate = threading.Event()
    models = await repository(
        repository_config(tmp_path, {}), fake_loader(FakeRuntime(), gate=gate)
    )
    handle = models.get("digits")

    with pytest.raises(ModelNotReady, match=r"model 'digits' is not ready \(LOADING\)"):
        await handle.infer(DIGIT_BATCH, None)
    assert not models.ready
    gate.set()
    await models.wait_loaded()
    assert models.ready
    with pytest.raises(InvalidInput, match=r"takes float32 \(N, 1, 8, 8\) batches"):
        await handle.infer(np.zeros((1, 3, 8, 8), np.float32), None)
    outputs = await handle.infer(DIGIT_BATCH, None)
    assert outputs.shape == (1, 2)


async def test_each_instance_has_a_batcher_and_requests_go_to_the_least_loaded(
    tmp_path, repository
):
    runtime = FakeRuntime(blocked=True)
    config = repository_config(tmp_path, {"instances": 2, "batching": {"max_batch_size": 1}})
    models = await repository(config, fake_loader(runtime))
    await models.wait_loaded()
    handle = models.get("digits")

    tasks = [asyncio.create_task(handle.infer(DIGIT_BATCH, None)) for _ in range(6)]
    await asyncio.to_thread(runtime.wait_started, 2)  # both instances busy at once
    queued = [b.queued_images for b in handle.batchers]
    runtime.gate.set()
    await asyncio.gather(*tasks)

    assert len(handle.batchers) == 2
    assert queued == [2, 2]


async def test_a_request_goes_to_an_idle_instance_not_behind_a_running_batch(tmp_path, repository):
    runtime = FakeRuntime(blocked=True)
    config = repository_config(tmp_path, {"instances": 2})
    models = await repository(config, fake_loader(runtime))
    await models.wait_loaded()
    handle = models.get("digits")

    first = asyncio.create_task(handle.infer(DIGIT_BATCH, None))
    await asyncio.to_thread(runtime.wait_started, 1)  # running: nothing left in its queue
    second = asyncio.create_task(handle.infer(DIGIT_BATCH, None))
    second_started = await asyncio.to_thread(runtime.started.acquire, timeout=5)

    assert second_started, "the second request waited behind the running batch"
    assert runtime.batch_sizes == [1, 1]  # two batches running at once, one per instance
    runtime.gate.set()
    outputs = await asyncio.gather(first, second)
    assert [o[0, 1] for o in outputs] == [1, 1]


async def test_close_stops_accepting_and_answers_every_queued_request(tmp_path, repository):
    runtime = FakeRuntime(blocked=True)
    models = await repository(repository_config(tmp_path, {}), fake_loader(runtime))
    await models.wait_loaded()
    handle = models.get("digits")
    queued = [
        asyncio.create_task(handle.infer(images(float(v), shape=(1, 8, 8)), None)) for v in range(5)
    ]
    await asyncio.to_thread(runtime.wait_started)

    events: list[str] = []
    for task in queued:
        task.add_done_callback(lambda _: events.append("answered"))

    async def close() -> None:
        await models.close()
        events.append("closed")

    async def while_closing() -> None:  # gather starts this once close() has begun
        assert not models.ready
        with pytest.raises(ModelNotReady, match="shutting down"):
            await handle.infer(DIGIT_BATCH, None)
        assert events == []  # close() waits for the batch held by the runtime
        runtime.gate.set()

    await asyncio.gather(close(), while_closing())

    assert events == ["answered"] * 5 + ["closed"]
    results = [task.result() for task in queued]
    assert [r[0, 0] for r in results] == [64.0 * v for v in range(5)]


async def test_lifespan_shutdown_drains_requests_in_flight(tmp_path):
    runtime = FakeRuntime(blocked=True, num_classes=10)
    config = repository_config(tmp_path, {})
    body = png_bytes(np.zeros((8, 8), np.uint8))
    async with in_process(config, fake_loader(runtime)) as (client, _):
        request = asyncio.create_task(
            client.post("/predict", content=body, headers={"content-type": "image/png"})
        )
        await asyncio.to_thread(runtime.wait_started)
        threading.Timer(0.2, runtime.gate.set).start()  # opens while the lifespan drains
    response = await request

    assert response.status_code == 200


@pytest.mark.parametrize(("ort", "spinning"), [({}, "0"), ({"allow_spinning": True}, "1")])
def test_onnx_sessions_do_not_spin_unless_the_model_config_allows_it(
    tmp_path, bundle_cache, ort, spinning
):
    config = repository_config(tmp_path, {"ort": ort}, cache_dir=str(bundle_cache))
    loaded = load_model(config.models[0], config.server, progress=lambda message: None)

    (runtime,) = loaded.runtimes
    options = runtime.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == spinning


def test_runtime_options_carry_ort_settings_to_onnx_only(tmp_path):
    onnx = repository_config(tmp_path, {"ort": {"allow_spinning": True}}, ort_threads=2)
    torchscript = repository_config(tmp_path, {"format": "torchscript"}, ort_threads=2)

    assert runtime_options(onnx.models[0], onnx.server) == {
        "intra_op_threads": 2,
        "allow_spinning": True,
    }
    assert runtime_options(torchscript.models[0], torchscript.server) == {}


def test_a_models_own_intra_op_threads_win_over_the_server_default(tmp_path):
    config = repository_config(tmp_path, {"ort": {"intra_op_threads": 1}}, ort_threads=2)

    assert runtime_options(config.models[0], config.server)["intra_op_threads"] == 1


def test_config_labels_and_normalisation_are_served_without_a_new_export(
    tmp_path, bundle_cache, monkeypatch
):
    first = repository_config(tmp_path, {}, cache_dir=str(bundle_cache))
    exported = load_model(first.models[0], first.server, lambda message: None)

    def exporter_must_not_run(*args, **kwargs):
        raise AssertionError("a label or mean/std change exported the model again")

    monkeypatch.setattr(FORMATS["onnx"], "export", exporter_must_not_run)
    letters = list("abcdefghij")
    changed = repository_config(
        tmp_path,
        {"labels": letters, "preprocess": {"mean": [0.25], "std": [0.125]}},
        cache_dir=str(bundle_cache),
    )
    served = load_model(changed.models[0], changed.server, lambda message: None)

    assert served.manifest["cache_key"] == exported.manifest["cache_key"]
    assert (exported.labels, served.labels) == ([str(digit) for digit in range(10)], letters)
    assert (served.preprocess.mean, served.preprocess.std) == ((0.25,), (0.125,))
    assert served.preprocess.crop == exported.preprocess.crop == (8, 8)


def test_missing_weights_are_made_at_load_by_the_models_recipe(
    tmp_path, bundle_cache, digits_weights, monkeypatch
):
    def train(out, progress):  # the session's trained digits stand in for a fresh training
        with atomic_path(out) as partial:
            shutil.copyfile(digits_weights, partial)

    monkeypatch.setitem(RECIPES, "digits", WeightsRecipe("resnet_digits", "a copy", train))
    weights = tmp_path / "home" / "digits.safetensors"
    config = repository_config(
        tmp_path,
        {"weights": str(weights), "weights_recipe": "digits"},
        cache_dir=str(bundle_cache),
    )
    loaded = load_model(config.models[0], config.server, lambda message: None)

    assert loaded.manifest["weights"]["sha256"] == file_sha256(digits_weights)
    assert loaded.manifest["weights"]["trained"] is True


def test_the_repository_imports_no_training_code():
    code = "import sys, service.repository; print('models.digits' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]

"""The native management API under `/models`: create or replace a model from a registry arch or
a whole NetworkSpec, PATCH its serving settings, upload its weights, make it the default,
delete it; every change a new version, every bad request a 4xx naming the problem.

In-process over fake runtimes, except one end-to-end test where a network defined in the
request is exported, verified and served by ONNX Runtime."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from safetensors.numpy import save as safetensors_bytes
from service_fakes import FakeRuntime, fake_loader, in_process, png_bytes, repository_config

from models import NetworkSpec, build_network, create_model
from service.config import ModelConfig, ServerConfig
from service.repository import load_model

DIGIT = png_bytes(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
PNG = {"content-type": "image/png"}
# A residual network given whole in the request: 1×8×8 → 3 classes.
TINY_SPEC = {
    "in_chans": 1,
    "stem": {"kind": "conv", "width": 8, "kwargs": {"kernel_size": 3}},
    "stages": [
        {"block": "basic", "width": 8, "depth": 1},
        {"block": "basic", "width": 16, "depth": 1, "stride": 2},
    ],
    "head": {"num_classes": 3},
}


TOKEN = "management-test-token"


def managed_config(tmp_path, model: dict | None = None, **server):
    """One digits-shaped model (`model` changes it), changes kept under `state`, management
    guarded by `TOKEN`."""
    state = str(tmp_path / "state")
    return repository_config(
        tmp_path, model or {}, state_dir=state, auth={"token": TOKEN}, **server
    )


@pytest.fixture
def config(tmp_path):
    return managed_config(tmp_path)


@contextlib.asynccontextmanager
async def managing(config, loader):
    """`in_process` with a client that sends the management token."""
    async with in_process(config, loader) as (client, serving):
        client.headers["authorization"] = f"Bearer {TOKEN}"
        yield client, serving


def state_dict_bytes(model) -> bytes:
    return safetensors_bytes({k: v.numpy().copy() for k, v in model.state_dict().items()})


def failing_when(runtime: FakeRuntime, instances: int):
    """The fake loader, except that a config with `instances` instances fails to load."""
    load = fake_loader(runtime)

    def loader(config: ModelConfig, server: ServerConfig, progress):
        if config.instances == instances:
            raise ValueError(f"{instances} instances do not fit")
        return load(config, server, progress)

    return loader


async def test_put_creates_a_model_and_a_new_config_becomes_its_next_version(config, runtime):
    async with managing(config, fake_loader(runtime)) as (client, _):
        created = await client.put("/models/extra", json={"arch": "resnet_digits", "top_k": 2})
        predict = await client.post("/models/extra/predict", content=DIGIT, headers=PNG)
        replaced = await client.put(
            "/models/extra", json={"arch": "resnet_digits", "batching": {"max_queue": 7}}
        )
        detail = (await client.get("/models/extra")).json()
        listed = (await client.get("/models")).json()["models"]

    assert created.status_code == 201
    assert created.json() == {"model": "extra", "version": "1", "state": "READY", "reason": None}
    assert predict.status_code == 200 and len(predict.json()["predictions"][0]) == 2
    assert replaced.status_code == 200 and replaced.json()["version"] == "2"
    assert detail["version"] == "2" and detail["state"] == "READY"
    assert detail["versions"] == [{"version": "2", "state": "READY", "reason": None}]
    assert detail["last_error"] is None and detail["default"] is False
    extra = [entry for entry in listed if entry["name"] == "extra"]
    assert [(e["version"], e["batching"]["max_queue"]) for e in extra] == [("2", 7)]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"arch": "resnet_digits", "batching": {"max_queue": 0}},
         "models.extra.batching.max_queue: Input should be greater than 0"),
        ({"arch": "resnet19"}, "models.extra.arch: unknown model 'resnet19'; did you mean"),
        ({"arch": "resnet_digits", "overrides": {"widths": 3}}, "models.extra.overrides"),
        ({"arch": "resnet_digits", "spec": TINY_SPEC}, "models.extra: Value error, set one of"),
        ({"spec": {**TINY_SPEC, "stages": [{"block": "basic", "width": 8, "depth": 0}]}},
         "models.extra.spec.stages[0].depth: must be >= 1"),
        ({"spec": {**TINY_SPEC, "stages": [{"block": "basik", "width": 8, "depth": 1}]}},
         "models.extra.spec.stages[0].block: unknown block type 'basik'"),
        ({"spec": {**TINY_SPEC, "head": {"num_classes": 3, "colour": 1}}},
         "models.extra.spec.head.colour: unknown field"),
        ({"spec": TINY_SPEC, "labels": ["a", "b"]}, "models.extra.labels: 2 labels"),
        ({"arch": "resnet_digits", "weights": "${BLOCKSERVE_API_TOKEN}"},
         "models.extra.weights: '${BLOCKSERVE_API_TOKEN}' is not an absolute path"),
        ({"name": "other", "arch": "resnet_digits"}, "models.extra.name: 'other' is not"),
        (["resnet_digits"], "models.extra: expected a JSON object"),
    ],
)  # fmt: skip
async def test_an_invalid_config_answers_400_naming_the_field_and_loads_nothing(
    config, runtime, body, named
):
    async with managing(config, fake_loader(runtime)) as (client, serving):
        response = await client.put("/models/extra", json=body)

    assert response.status_code == 400
    assert named in response.json()["error"]
    assert serving.repository.names == ["digits"]


async def test_a_body_that_is_not_json_or_too_large_is_refused(tmp_path, runtime):
    config = managed_config(tmp_path, limits={"max_body_bytes": 64})
    async with managing(config, fake_loader(runtime)) as (client, _):
        not_json = await client.put("/models/extra", content=b"{arch: ")
        large = await client.put("/models/extra", json={"arch": "resnet_digits", "x": "y" * 64})

    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
    assert large.status_code == 413 and "max_body_bytes" in large.json()["error"]


async def test_a_failed_load_answers_400_with_its_reason_and_the_served_version_stays(
    config, runtime
):
    async with managing(config, failing_when(runtime, instances=3)) as (client, _):
        failed = await client.patch("/models/digits", json={"instances": 3})
        detail = (await client.get("/models/digits")).json()
        predict = await client.post("/predict", content=DIGIT, headers=PNG)
        new = await client.put("/models/broken", json={"arch": "resnet_digits", "instances": 3})
        broken = await client.get("/models/broken")

    reason = "ValueError: 3 instances do not fit"
    assert failed.status_code == 400
    assert failed.json() == {
        "error": f"failed to load model 'digits' version 2: {reason}",
        "model": "digits",
        "version": "2",
        "state": "FAILED",
        "reason": reason,
    }
    assert detail["version"] == "1" and detail["state"] == "READY"
    assert detail["last_error"] == reason
    assert detail["weights"]["trained"] is False  # the served version's manifest
    assert predict.status_code == 200
    assert new.status_code == 400 and new.json()["reason"] == reason
    assert broken.status_code == 200
    assert broken.json()["state"] == "FAILED" and broken.json()["reason"] == reason


async def test_patch_reloads_with_the_changed_instances_and_batching_as_a_new_version(
    tmp_path, runtime
):
    config = managed_config(tmp_path, {"batching": {"max_batch_size": 4, "max_delay_ms": 1}})
    async with managing(config, fake_loader(runtime)) as (client, serving):
        patched = await client.patch(
            "/models/digits", json={"instances": 2, "batching": {"max_queue": 9}, "top_k": 1}
        )
        handle = serving.repository.get("digits")
        refused = await client.patch("/models/digits", json={"arch": "resnet18"})
        unknown = await client.patch("/models/nope", json={"instances": 2})

    assert patched.status_code == 200 and patched.json()["version"] == "2"
    assert handle.version == "2" and len(handle.batchers) == 2
    assert handle.config.top_k == 1
    assert handle.config.batching.model_dump() == {
        "max_batch_size": 4,
        "max_delay_ms": 1,
        "max_queue": 9,
        "inline_max_ms": 0.25,
    }
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("models.digits.arch: PATCH changes instances")
    assert unknown.status_code == 404


async def test_default_moves_requests_that_name_no_model(config, runtime):
    async with managing(config, fake_loader(runtime)) as (client, serving):
        await client.put("/models/extra", json={"arch": "resnet_digits", "top_k": 1})
        made = await client.put("/models/extra/default")
        predict = await client.post("/predict", content=DIGIT, headers=PNG)
        listed = (await client.get("/models")).json()
        unknown = await client.put("/models/nope/default")

    assert made.status_code == 200 and made.json() == {"default": "extra"}
    assert predict.json()["model"] == "extra" and len(predict.json()["predictions"][0]) == 1
    assert listed["default"] == "extra"
    assert serving.manager.store.read().default == "extra"
    assert unknown.status_code == 404 and "unknown model 'nope'" in unknown.json()["error"]


async def test_delete_unloads_a_version_or_the_model_and_404s_the_unknown(config, runtime):
    async with managing(config, fake_loader(runtime)) as (client, _):
        await client.put("/models/extra", json={"arch": "resnet_digits"})
        await client.put(
            "/models/extra", json={"arch": "resnet_digits", "version_policy": {"all": True}}
        )
        one = await client.delete("/models/extra?version=1")
        versions = (await client.get("/models/extra")).json()["versions"]
        missing_version = await client.delete("/models/extra?version=7")
        whole = await client.delete("/models/extra")
        gone = await client.get("/models/extra")
        predict = await client.post("/models/extra/predict", content=DIGIT, headers=PNG)
        unknown = await client.delete("/models/nope")

    assert one.status_code == 200 and one.json() == {"model": "extra", "unloaded": ["1"]}
    assert [v["version"] for v in versions] == ["2"]
    assert missing_version.status_code == 404
    assert whole.json() == {"model": "extra", "unloaded": ["2"]}
    assert gone.status_code == 404 and predict.status_code == 404
    assert unknown.status_code == 404


async def test_get_model_shows_a_version_asked_for_and_404s_an_unknown_one(config, runtime):
    async with managing(config, fake_loader(runtime)) as (client, _):
        await client.put(
            "/models/digits", json={"arch": "resnet_digits", "version_policy": {"latest": 2}}
        )
        first = (await client.get("/models/digits?version=1")).json()
        unknown = await client.get("/models/digits?version=5")

    assert first["version"] == "1" and first["state"] == "READY"
    assert [v["version"] for v in first["versions"]] == ["1", "2"]
    assert unknown.status_code == 404 and "no version '5'" in unknown.json()["error"]


async def test_uploaded_weights_are_checked_kept_and_served_as_a_new_version(
    config, runtime, tmp_path
):
    good = state_dict_bytes(create_model("resnet_digits"))
    async with managing(config, fake_loader(runtime)) as (client, serving):
        accepted = await client.put("/models/digits/weights", content=good)
        handle = serving.repository.get("digits")

    assert accepted.status_code == 200 and accepted.json()["version"] == "2"
    stored = handle.config.weights
    assert stored.parent == tmp_path / "state" / "weights" / "digits"
    assert stored.read_bytes() == good
    assert [p.name for p in stored.parent.iterdir()] == [stored.name]


async def test_weights_of_the_wrong_shape_or_format_or_size_are_refused_and_not_kept(
    tmp_path, runtime
):
    config = managed_config(tmp_path, limits={"max_weights_bytes": 400_000})
    model = create_model("resnet_digits")
    wrong = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    wrong["head.fc.weight"] = np.zeros((4, 64), np.float32)
    good = state_dict_bytes(model)

    async def chunks():
        for _ in range(5):
            yield good[:100_000]

    async with managing(config, fake_loader(runtime)) as (client, serving):
        shape = await client.put("/models/digits/weights", content=safetensors_bytes(wrong))
        image = await client.put("/models/digits/weights", content=DIGIT)
        empty = await client.put("/models/digits/weights", content=b"")
        declared = await client.put("/models/digits/weights", content=b"\0" * 400_001)
        streamed = await client.put("/models/digits/weights", content=chunks())
        unknown = await client.put("/models/nope/weights", content=good)
        versions = serving.repository.version_names("digits")

    assert shape.status_code == 400
    assert "head.fc.weight: model [10, 64], file [4, 64]" in shape.json()["error"]
    assert image.status_code == 415 and "safetensors" in image.json()["error"]
    assert empty.status_code == 415
    assert declared.status_code == 413 and "max_weights_bytes" in declared.json()["error"]
    assert streamed.status_code == 413
    assert unknown.status_code == 404
    assert versions == ["1"]
    assert list((tmp_path / "state" / "weights" / "digits").iterdir()) == []


async def test_a_network_given_as_a_spec_is_exported_verified_and_served(tmp_path):
    """Real export and ONNX Runtime: the spec in the request is served with no code."""
    config = managed_config(tmp_path, limits={"max_weights_bytes": 100_000})
    body = {"spec": TINY_SPEC, "preprocess": {"crop": 8, "channels": "gray"}, "labels": list("abc")}
    pixels = np.linspace(-1, 1, 64, dtype=np.float32)
    infer = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32",
                         "data": pixels.tolist()}]}  # fmt: skip
    trained = build_network(NetworkSpec.from_dict(TINY_SPEC))
    for parameter in trained.parameters():
        parameter.data.uniform_(-0.5, 0.5)
    wrong = {k: v.numpy().copy() for k, v in trained.state_dict().items()}
    wrong["stem.conv.weight"] = np.zeros((8, 1, 5, 5), np.float32)

    async with managing(config, load_model) as (client, _):
        created = await client.put("/models/tiny", json=body)
        detail = (await client.get("/models/tiny")).json()
        before = (await client.post("/v2/models/tiny/infer", json=infer)).json()
        uploaded = await client.put("/models/tiny/weights", content=state_dict_bytes(trained))
        after = (await client.post("/v2/models/tiny/infer", json=infer)).json()
        shape = await client.put("/models/tiny/weights", content=safetensors_bytes(wrong))
        image = await client.put("/models/tiny/weights", content=DIGIT)
        large = await client.put("/models/tiny/weights", content=b"\0" * 100_001)
        four = {**body, "spec": {**TINY_SPEC, "head": {"num_classes": 4}}, "labels": None}
        respecified = await client.put("/models/tiny", json=four)
        four_out = (await client.post("/v2/models/tiny/infer", json=infer)).json()

    assert created.status_code == 201, created.text
    assert detail["spec"]["stages"][1]["width"] == 16 and detail["arch"] is None
    assert detail["parity"] and detail["outputs"][0]["shape"] == [-1, 3]
    assert detail["serving"]["labels"] == ["a", "b", "c"]
    assert before["outputs"][0]["shape"] == [1, 3]
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["version"] == "2"
    assert after["model_version"] == "2" and after["outputs"][0]["shape"] == [1, 3]
    with torch.inference_mode():
        expected = trained.eval()(torch.from_numpy(pixels.reshape(1, 1, 8, 8)))[0]
    np.testing.assert_allclose(after["outputs"][0]["data"], expected.numpy(), atol=1e-4)
    assert not np.allclose(after["outputs"][0]["data"], before["outputs"][0]["data"])
    assert shape.status_code == 400 and "stem.conv.weight" in shape.json()["error"]
    assert image.status_code == 415
    assert large.status_code == 413
    assert respecified.json()["version"] == "3"
    assert four_out["outputs"][0]["shape"] == [1, 4]  # another spec, another bundle


async def test_every_change_needs_the_management_token_and_reads_do_not(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, serving):
        changes = [
            await client.put("/models/extra", json={"arch": "resnet_digits"}),
            await client.patch("/models/digits", json={"top_k": 1}),
            await client.put("/models/digits/weights", content=b"x"),
            await client.put("/models/digits/default"),
            await client.delete("/models/digits"),
        ]
        read = await client.get("/models/digits")

    assert [response.status_code for response in changes] == [401] * 5
    assert all("bearer token" in response.json()["error"] for response in changes)
    assert serving.repository.version_names("digits") == ["1"]
    assert read.status_code == 200


async def test_changes_and_uploaded_weights_are_served_again_after_a_restart(config, runtime):
    weights = state_dict_bytes(create_model("resnet_digits"))
    async with managing(config, fake_loader(runtime)) as (client, _):
        await client.put("/models/extra", json={"arch": "resnet_digits", "top_k": 2})
        await client.put("/models/digits/weights", content=weights)
        await client.put("/models/extra/default")
    async with managing(config, fake_loader(runtime)) as (client, serving):
        listed = (await client.get("/models")).json()
        digits = serving.repository.get("digits")

    served = {(entry["name"], entry["version"], entry["state"]) for entry in listed["models"]}
    assert served == {("extra", "1", "READY"), ("digits", "2", "READY")}
    assert listed["default"] == "extra"
    assert digits.trained and digits.config.weights.read_bytes() == weights

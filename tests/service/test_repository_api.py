"""Triton's model repository extension over REST (`/v2/repository/...`), in-process over a
fake runtime: the index, loads from a config or of the current config, unloads, failures."""

from __future__ import annotations

import json

import pytest
from service_fakes import fake_loader, in_process, repository_config

from service.model_store import ModelStore

TOKEN = "repository-test-token"
MANAGER = {"Authorization": f"Bearer {TOKEN}"}
INPUT = {"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.25] * 64}
FAILURE = "weights file is corrupt"


def served(tmp_path, *models: dict, **server):
    """The digits-shaped models given (one `digits` by default), management by `TOKEN`."""
    return repository_config(tmp_path, *(models or ({},)), auth={"token": TOKEN}, **server)


def load_body(**config) -> dict:
    return {"parameters": {"config": json.dumps(config)}}


async def infer(client, model: str):
    return await client.post(f"/v2/models/{model}/infer", json={"inputs": [INPUT]})


async def index(client, **body) -> list[dict]:
    response = await client.post("/v2/repository/index", json=body)
    assert response.status_code == 200
    return response.json()


async def test_index_lists_each_version_its_state_and_a_failed_load_as_unavailable(
    tmp_path, runtime
):
    config = served(tmp_path, {}, {"name": "broken"})
    async with in_process(config, fake_loader(runtime, failures={"broken": FAILURE})) as (
        client,
        _,
    ):
        everything = await index(client)
        ready = await index(client, ready=True)
        empty_body = await client.post("/v2/repository/index", content=b"")

    reason = "RuntimeError while loading (see the server log)"
    assert everything == [
        {"name": "broken", "version": "1", "state": "UNAVAILABLE", "reason": reason},
        {"name": "digits", "version": "1", "state": "READY", "reason": ""},
    ]
    assert ready == [everything[1]]
    assert empty_body.status_code == 200 and empty_body.json() == everything


async def test_load_serves_a_new_model_from_its_config_and_records_it(tmp_path, runtime):
    config = served(tmp_path, state_dir=str(tmp_path / "state"))
    async with in_process(config, fake_loader(runtime)) as (client, serving):
        loaded = await client.post(  # as tritonclient sends it: JSON without a Content-Type
            "/v2/repository/models/digits_copy/load",
            content=json.dumps(load_body(arch="resnet_digits", top_k=3)),
            headers=MANAGER,
        )
        answer = await infer(client, "digits_copy")
        entries = await index(client)
        copy = serving.repository.get("digits_copy")

    assert loaded.status_code == 200 and loaded.json() == {}
    assert answer.status_code == 200 and answer.json()["model_name"] == "digits_copy"
    assert {"name": "digits_copy", "version": "1", "state": "READY", "reason": ""} in entries
    assert copy.config.top_k == 3
    stored = ModelStore(tmp_path / "state").read().models["digits_copy"]
    assert [entry["top_k"] for entry in stored] == [3]  # made through the manager


async def test_load_without_a_config_reloads_the_current_one_in_place(tmp_path, runtime):
    async with in_process(served(tmp_path, {"top_k": 2}), fake_loader(runtime)) as (
        client,
        serving,
    ):
        before = serving.repository.get("digits")
        reloaded = await client.post("/v2/repository/models/digits/load", headers=MANAGER)
        after = serving.repository.get("digits")
        answer = await infer(client, "digits")

    assert reloaded.status_code == 200
    assert after is not before and after.version == before.version == "1"
    assert after.config == before.config
    assert answer.status_code == 200


async def test_a_model_of_the_config_file_loads_again_after_an_unload(tmp_path, runtime):
    async with in_process(served(tmp_path, {}, {"name": "other"}), fake_loader(runtime)) as (
        client,
        _,
    ):
        unloaded = await client.post("/v2/repository/models/other/unload", headers=MANAGER)
        loaded = await client.post("/v2/repository/models/other/load", headers=MANAGER)
        answer = await infer(client, "other")

    assert unloaded.status_code == loaded.status_code == 200
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (None, 404, "unknown model 'nope'"),
        (load_body(name="other", arch="resnet_digits"), 400, "is not the name in the path"),
        ({"parameters": {"config": "{not json"}}, 400, "parameter 'config' is not valid JSON"),
        ({"parameters": {"config": "[1]"}}, 400, "expected a JSON object (a model config)"),
        (load_body(arch="resnet_digits", batching={"max_queue": 0}), 400, "batching.max_queue"),
        (load_body(arch="resnet_digits", colour="red"), 400, "colour: Extra inputs"),
        (load_body(arch="resnet_digits", version_policy={"latest": 0}), 400, "policy.latest"),
        ({"parameters": {"config": 7}}, 400, "invalid request body: parameters.config"),
        ({"parameters": {"file:1/model.onnx": "AAAA"}}, 400, "file:1/model.onnx"),
    ],
    ids=[
        "unknown-model",
        "other-name",
        "not-json",
        "not-an-object",
        "bad-field",
        "unknown-field",
        "bad-nested-field",
        "config-not-a-string",
        "files",
    ],
)
async def test_a_bad_load_is_refused_naming_the_problem(tmp_path, runtime, body, status, message):
    async with in_process(served(tmp_path), fake_loader(runtime)) as (client, serving):
        response = await client.post("/v2/repository/models/nope/load", json=body, headers=MANAGER)
        names = serving.repository.names

    assert response.status_code == status
    assert message in response.json()["error"]
    assert names == ["digits"]


async def test_a_failing_load_answers_its_reason_and_every_other_model_still_serves(
    tmp_path, runtime
):
    loader = fake_loader(runtime, failures={"flaky": FAILURE})
    async with in_process(served(tmp_path), loader) as (client, _):
        failed = await client.post(
            "/v2/repository/models/flaky/load",
            json=load_body(arch="resnet_digits"),
            headers=MANAGER,
        )
        answer = await infer(client, "digits")
        entries = await index(client)

    assert failed.status_code == 400
    assert failed.json()["error"] == (
        "failed to load model 'flaky' version 1: RuntimeError while loading (see the server log)"
    )
    assert answer.status_code == 200
    (flaky,) = [entry for entry in entries if entry["name"] == "flaky"]
    assert flaky["state"] == "UNAVAILABLE" and "RuntimeError" in flaky["reason"]


async def test_unload_stops_serving_and_the_index_shows_it_unavailable(tmp_path, runtime):
    async with in_process(served(tmp_path, {}, {"name": "other"}), fake_loader(runtime)) as (
        client,
        _,
    ):
        unloaded = await client.post(
            "/v2/repository/models/other/unload",
            json={"parameters": {"unload_dependents": True}},
            headers=MANAGER,
        )
        answer = await infer(client, "other")
        still = await infer(client, "digits")
        entries = await index(client)
        again = await client.post("/v2/repository/models/other/unload", headers=MANAGER)

    assert unloaded.status_code == 200 and unloaded.json() == {}
    assert answer.status_code == 404
    assert still.status_code == 200
    assert {"name": "other", "state": "UNAVAILABLE", "reason": "unloaded"} in entries
    assert again.status_code == 404 and "unknown model 'other'" in again.json()["error"]


@pytest.mark.parametrize("operation", ["load", "unload"])
@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer not-the-token"}, 403)],
    ids=["no-token", "wrong-token"],
)
async def test_loads_and_unloads_need_the_api_token(tmp_path, runtime, operation, headers, status):
    async with in_process(served(tmp_path), fake_loader(runtime)) as (client, serving):
        response = await client.post(f"/v2/repository/models/digits/{operation}", headers=headers)
        handle = serving.repository.get("digits")

    assert response.status_code == status and response.json()["error"]
    assert handle.state == "READY"

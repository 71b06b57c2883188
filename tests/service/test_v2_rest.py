"""Open Inference Protocol V2 over REST, in-process over a fake runtime."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from service_fakes import FakeRuntime, fake_loader, in_process, metric, png_bytes, repository_config

INPUT = {"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.25] * 64}


async def test_server_metadata_and_health_answer_with_bodies(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        metadata = await client.get("/v2")
        slash = await client.get("/v2/")
        live = await client.get("/v2/health/live")
        ready = await client.get("/v2/health/ready")

    assert metadata.json() == {
        "name": "blockserve",
        "version": metadata.json()["version"],
        # exactly what is served, in Triton's names
        "extensions": [
            "binary_tensor_data",
            "classification",
            "model_configuration",
            "model_repository",
            "statistics",
        ],
    }
    assert slash.status_code == 200 and slash.json() == metadata.json()  # no redirect
    assert live.status_code == 200 and live.json() == {"live": True}
    assert ready.status_code == 200 and ready.json() == {"ready": True}


@pytest.mark.parametrize("path", ["/v2/models/digits", "/v2/models/digits/versions/1"])
async def test_model_metadata_has_a_dynamic_batch_dimension(config, runtime, path):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.get(path)

    assert response.status_code == 200
    metadata = response.json()
    assert metadata["name"] == "digits" and metadata["versions"] == ["1"]
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert metadata["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    assert metadata["parameters"]["trained"] is False


async def test_model_ready_by_status_code_and_body(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        ready = await client.get("/v2/models/digits/ready")
        versioned = await client.get("/v2/models/digits/versions/1/ready")
        unknown = await client.get("/v2/models/nope/ready")
        bad_version = await client.get("/v2/models/digits/versions/7/ready")

    assert ready.status_code == 200 and ready.json() == {"name": "digits", "ready": True}
    assert versioned.status_code == 200 and versioned.json() == ready.json()
    assert unknown.status_code == 404 and "available models: 'digits'" in unknown.json()["error"]
    assert bad_version.status_code == 404
    assert bad_version.json()["error"] == "model 'digits' has no version '7'; versions: 1"


@pytest.mark.parametrize(
    "path", ["/v2/models/digits/config", "/v2/models/digits/versions/1/config"]
)
async def test_model_config_in_tritons_schema(config, runtime, path):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.get(path)

    assert response.status_code == 200
    model = response.json()
    assert model["name"] == "digits" and model["platform"] == "onnxruntime_onnx"
    assert model["max_batch_size"] == config.models[0].batching.max_batch_size
    assert model["input"] == [
        {"name": "input", "data_type": "TYPE_FP32", "format": "FORMAT_NCHW", "dims": [1, 8, 8]}
    ]
    assert model["output"] == [{"name": "logits", "data_type": "TYPE_FP32", "dims": [10]}]


@pytest.mark.parametrize("suffix", ["/config", "/stats", ""], ids=["config", "stats", "metadata"])
async def test_model_routes_answer_404_for_an_unknown_model_or_version(config, runtime, suffix):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        unknown = await client.get(f"/v2/models/nope{suffix}")
        bad_version = await client.get(f"/v2/models/digits/versions/7{suffix}")

    assert unknown.status_code == 404 and "unknown model 'nope'" in unknown.json()["error"]
    assert bad_version.status_code == 404
    assert bad_version.json()["error"] == "model 'digits' has no version '7'; versions: 1"


async def test_statistics_count_the_inferences_per_model_and_version(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        infer = await client.post("/v2/models/digits/infer", json={"inputs": [INPUT]})
        every = await client.get("/v2/models/stats")
        model = await client.get("/v2/models/digits/stats")
        versioned = await client.get("/v2/models/digits/versions/1/stats")

    assert infer.status_code == 200
    (stats,) = every.json()["model_stats"]
    assert stats["name"] == "digits" and stats["version"] == "1"
    assert stats["inference_count"] == 1 and stats["execution_count"] == 1
    assert stats["inference_stats"]["success"]["count"] == 1
    assert model.json() == versioned.json() == every.json()


async def test_models_stats_is_every_models_statistics_even_beside_a_model_named_stats(
    tmp_path, runtime
):
    config = repository_config(tmp_path, {}, {"name": "stats"})
    async with in_process(config, fake_loader(runtime)) as (client, _):
        every = await client.get("/v2/models/stats")
        named = await client.get("/v2/models/stats/versions/1")

    assert [stats["name"] for stats in every.json()["model_stats"]] == ["digits", "stats"]
    assert named.status_code == 200 and named.json()["name"] == "stats"


async def test_infer_flat_fp32_answers_outputs_and_echoes_the_id(config, runtime):
    request = {"id": "req-1", "inputs": [INPUT]}
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post("/v2/models/digits/infer", json=request)

    assert response.status_code == 200
    body = response.json()
    assert body["model_name"] == "digits" and body["model_version"] == "1"
    assert body["id"] == "req-1"
    (output,) = body["outputs"]
    assert output["name"] == "logits" and output["datatype"] == "FP32"
    assert output["shape"] == [1, 10]
    assert output["data"][:2] == [16.0, 1.0]  # the fake: [sum of inputs, batch size, 0...]


async def test_infer_nested_data_and_versioned_path(config, runtime):
    nested = np.full((2, 1, 8, 8), 0.5).tolist()
    request = {"inputs": [{**INPUT, "shape": [2, 1, 8, 8], "data": nested}]}
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post("/v2/models/digits/versions/1/infer", json=request)
        again = await client.post("/v2/models/digits/infer", json=request)

    body = response.json()
    assert response.status_code == 200
    assert body["id"] and body["id"] != again.json()["id"]  # a fresh id when none was sent
    assert body["outputs"][0]["shape"] == [2, 10]
    assert body["outputs"][0]["data"][0::10] == [32.0, 32.0]


async def test_uint8_input_is_treated_as_pixels_and_normalised(config, runtime):
    request = {"inputs": [{**INPUT, "datatype": "UINT8", "data": [255] * 64}]}
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post("/v2/models/digits/infer", json=request)

    assert response.status_code == 200
    assert response.json()["outputs"][0]["data"][0] == 64.0  # (255/255 - 0.5) / 0.5 = 1 each


@pytest.mark.parametrize(
    ("request_body", "status", "needle"),
    [
        ({"inputs": [{**INPUT, "shape": [1, 1, 4, 4], "data": [0] * 16}]}, 400, "does not match"),
        ({"inputs": [{**INPUT, "data": [0] * 10}]}, 400, "needs 64 values, data has 10"),
        ({"inputs": [{**INPUT, "datatype": "INT32", "data": [0] * 64}]}, 400, "not accepted"),
        ({"inputs": [{**INPUT, "datatype": "FP99"}]}, 400, "unknown datatype 'FP99'"),
        ({"inputs": [{**INPUT, "name": "pixels"}]}, 400, "has no input 'pixels'"),
        ({"inputs": [INPUT, INPUT]}, 400, "exactly one input"),
        ({"inputs": []}, 400, "inputs"),
        ({"inputs": [{**INPUT, "shape": ["1", 1, 8, 8]}]}, 400, "inputs[0].shape[0]"),
        ({"inputs": [INPUT], "outputs": [{"name": "probs"}]}, 400, "has no output 'probs'"),
        ({"id": "x"}, 400, "inputs: Field required"),
    ],
)
async def test_bad_infer_requests_answer_400_with_an_error_object(
    config, runtime, request_body, status, needle
):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post("/v2/models/digits/infer", json=request_body)

    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert needle in response.json()["error"]


async def test_an_unknown_output_is_refused_before_inference_naming_the_outputs(config, runtime):
    request = {"inputs": [INPUT], "outputs": [{"name": "logits"}, {"name": "probs"}]}
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post("/v2/models/digits/infer", json=request)

    assert response.status_code == 400
    assert response.json()["error"] == "model 'digits' has no output 'probs'; outputs: ['logits']"
    assert runtime.batch_sizes == []  # no image reached the runtime


async def test_requested_outputs_are_answered_in_the_requested_order(config, runtime):
    request = {"inputs": [INPUT], "outputs": [{"name": "logits"}, {"name": "logits"}]}
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post("/v2/models/digits/infer", json=request)

    assert response.status_code == 200
    assert [output["name"] for output in response.json()["outputs"]] == ["logits", "logits"]


async def test_infer_errors_for_unknown_model_and_invalid_json(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        unknown = await client.post("/v2/models/nope/infer", json={"inputs": [INPUT]})
        broken = await client.post(
            "/v2/models/digits/infer", content=b"{", headers={"content-type": "application/json"}
        )
        metrics = (await client.get("/metrics")).text

    assert unknown.status_code == 404 and "unknown model 'nope'" in unknown.json()["error"]
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]
    assert metric(metrics, "blockserve_requests_total", model="digits", status="400") == 1


async def test_rest_predict_and_v2_infer_share_a_batch(tmp_path):
    runtime = FakeRuntime(blocked=True, num_classes=10)
    config = repository_config(tmp_path, {"batching": {"max_batch_size": 8}})
    png = png_bytes(np.zeros((8, 8), np.uint8))
    async with in_process(config, fake_loader(runtime)) as (client, serving):
        head = asyncio.create_task(client.post("/v2/models/digits/infer", json={"inputs": [INPUT]}))
        await asyncio.to_thread(runtime.wait_started)
        v2 = asyncio.create_task(client.post("/v2/models/digits/infer", json={"inputs": [INPUT]}))
        rest = asyncio.create_task(
            client.post("/predict", content=png, headers={"content-type": "image/png"})
        )
        batcher = serving.repository.get("digits").batchers[0]
        while batcher.queued_images < 2:
            await asyncio.sleep(0.005)
        runtime.gate.set()
        responses = [await head, await v2, await rest]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert runtime.batch_sizes == [1, 2]

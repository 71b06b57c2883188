"""The real trained digits model end to end: train -> export -> ONNX Runtime -> HTTP."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from service_fakes import in_process, png_bytes

from models.digits import load_digits_split
from models.files import file_sha256
from models.registry import create_model
from models.summary import summarize
from service.config import GrpcConfig, load_config, parse_config
from service.repository import load_model


@pytest.fixture
def config(digits_weights, bundle_cache):
    return parse_config(
        {
            "server": {"grpc": {"enabled": False}, "cache_dir": str(bundle_cache)},
            "models": [
                {
                    "name": "digits",
                    "arch": "resnet_digits",
                    "weights": str(digits_weights),
                    "batching": {"max_batch_size": 32},
                },
                {"name": "untrained", "arch": "resnet_digits"},
            ],
        }
    )


@pytest.fixture(scope="module")
def held_out():
    split = load_digits_split()
    return split.test_images, split.test_labels


async def test_held_out_pngs_through_http_are_classified_with_at_least_95_percent(config, held_out):
    images, labels = held_out
    predicted = []
    async with in_process(config, load_model) as (client, _):
        for start in range(0, len(images), 40):
            files = [
                ("files", (f"{i}.png", png_bytes(image), "image/png"))
                for i, image in enumerate(images[start : start + 40], start)
            ]
            response = await client.post("/predict?top_k=1", files=files)
            assert response.status_code == 200
            predicted += [int(p[0]["label"]) for p in response.json()["predictions"]]

    accuracy = np.mean(np.array(predicted) == labels)
    assert len(predicted) == len(labels) == 360
    assert accuracy >= 0.95


async def test_manifest_and_models_flag_trained_and_untrained_weights(config, digits_weights):
    async with in_process(config, load_model) as (client, _):
        models = {m["name"]: m for m in (await client.get("/models")).json()["models"]}
        trained = (await client.get("/models/digits")).json()
        untrained = (await client.get("/models/untrained")).json()
        metadata = (await client.get("/v2/models/untrained")).json()

    assert models["digits"]["state"] == "READY" and models["digits"]["trained"] is True
    assert models["untrained"]["trained"] is False
    assert trained["weights"]["trained"] is True
    assert trained["weights"]["sha256"] == file_sha256(digits_weights)
    assert trained["input"]["shape"] == [-1, 1, 8, 8]
    assert untrained["weights"]["trained"] is False
    assert metadata["parameters"]["trained"] is False


async def test_summary_as_text_json_and_mermaid(config):
    async with in_process(config, load_model) as (client, _):
        text = await client.get("/models/digits/summary")
        as_json = await client.get("/models/digits/summary?format=json")
        mermaid = await client.get("/models/digits/summary?format=mermaid")

    network = summarize(create_model("resnet_digits").eval(), (1, 8, 8))
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text == f"{network.to_text()}\nServed precision: fp32\n"
    assert as_json.json() == network.to_json()
    assert mermaid.headers["content-type"].startswith("text/plain")
    assert mermaid.text == network.to_mermaid()


async def test_the_summary_is_read_from_the_manifest_without_building_the_network(
    config, monkeypatch
):
    def must_not_build(*args, **kwargs):
        raise AssertionError("the summary endpoint built the network")

    async with in_process(config, load_model) as (client, _):
        monkeypatch.setattr("models.builder.build_network", must_not_build)  # every caller's
        response = await client.get("/models/digits/summary")

    assert response.status_code == 200 and "Total params" in response.text


async def test_the_manifest_endpoint_shows_what_is_served_next_to_the_bundles_defaults(
    digits_weights, bundle_cache
):
    letters = list("abcdefghij")
    config = parse_config(
        {
            "server": {"grpc": {"enabled": False}, "cache_dir": str(bundle_cache)},
            "models": [
                {
                    "name": "digits",
                    "arch": "resnet_digits",
                    "weights": str(digits_weights),
                    "labels": letters,
                    "preprocess": {"mean": [0.25]},
                }
            ],
        }
    )
    async with in_process(config, load_model) as (client, _):
        manifest = (await client.get("/models/digits")).json()

    assert manifest["labels"] == [str(digit) for digit in range(10)]
    assert manifest["serving"]["labels"] == letters
    assert manifest["serving"]["preprocess"]["mean"] == [0.25]
    assert manifest["serving"]["preprocess"]["std"] == manifest["preprocess"]["std"]


async def test_v2_uint8_pixels_match_predict_on_the_same_digits(config, held_out):
    images, labels = held_out
    pixels = images[:16].reshape(16, 1, 8, 8)
    request = {
        "inputs": [
            {"name": "input", "shape": [16, 1, 8, 8], "datatype": "UINT8",
             "data": pixels.tolist()}
        ]
    }  # fmt: skip
    async with in_process(config, load_model) as (client, _):
        response = await client.post("/v2/models/digits/infer", json=request)

    logits = np.array(response.json()["outputs"][0]["data"]).reshape(16, 10)
    assert np.mean(logits.argmax(axis=1) == labels[:16]) >= 0.9


async def test_failing_models_are_reported_with_their_reason_and_others_serve(
    tmp_path, bundle_cache
):
    config = parse_config(
        {
            "server": {"grpc": {"enabled": False}, "cache_dir": str(bundle_cache)},
            "models": [
                {"name": "digits", "arch": "resnet_digits", "weights": str(tmp_path / "no.st")},
                {"name": "typo", "arch": "resnet_digitz"},
                {"name": "mislabelled", "arch": "resnet_digits", "labels": ["a", "b"]},
                {"name": "spare", "arch": "resnet_digits"},
            ],
        }
    )
    async with in_process(config, load_model) as (client, _):
        models = {m["name"]: m for m in (await client.get("/models")).json()["models"]}
        ready = await client.get("/health/ready")
        spare = await client.post(
            "/models/spare/predict",
            content=png_bytes(np.zeros((8, 8), np.uint8)),
            headers={"content-type": "image/png"},
        )

    assert models["digits"]["state"] == "FAILED"
    assert (
        "not found (set `weights_recipe: digits` to make it at start)"
        in (models["digits"]["reason"])
    )
    assert models["typo"]["state"] == "FAILED" and "resnet_digits" in models["typo"]["reason"]
    assert models["mislabelled"]["reason"] == (
        "ModelConfigError: labels: 2 labels configured for a model with 10 classes"
    )
    assert ready.status_code == 503 and ready.json()["state"] == "FAILED"
    assert spare.status_code == 200


@pytest.mark.slow
async def test_a_first_run_of_the_default_config_trains_the_digits_and_serves_them(
    tmp_path, monkeypatch, caplog, held_out
):
    monkeypatch.setenv("BLOCKSERVE_HOME", str(tmp_path))
    monkeypatch.delenv("BLOCKSERVE_CONFIG", raising=False)
    config = load_config(None)
    config = config.model_copy(
        update={"server": config.server.model_copy(update={"grpc": GrpcConfig(enabled=False)})}
    )
    images, labels = held_out
    caplog.set_level(logging.INFO, logger="service.repository")
    async with in_process(config, load_model) as (client, _):
        ready = await client.get("/health/ready")
        files = [
            ("files", (f"{i}.png", png_bytes(image), "image/png"))
            for i, image in enumerate(images[:40])
        ]
        response = await client.post("/predict?top_k=1", files=files)

    weights = tmp_path / "digits" / "digits.safetensors"
    assert ready.status_code == 200
    assert weights.is_file() and weights.with_suffix(".json").is_file()
    assert "making them with recipe 'digits'" in caplog.text and "epoch 30/30" in caplog.text
    predicted = [int(p[0]["label"]) for p in response.json()["predictions"]]
    assert np.mean(np.array(predicted) == labels[:40]) >= 0.95

"""A model served at `precision: int8`: quantized at load's export, said so everywhere it is
described, and as accurate over HTTP as its fp32 twin."""

from __future__ import annotations

import numpy as np
import pytest
from service_fakes import in_process, png_bytes

from models.digits import load_digits_split
from models.registry import model_default_cfg
from service.calibration import (
    CalibrationError,
    model_reduced_precision,
    reduced_precision,
    served_preprocess,
)
from service.config import CalibrationConfig, ConfigError, PreprocessConfig, parse_config
from service.imaging.decode import decode_images
from service.network import network_of
from service.repository import load_model


def digits_entry(name: str, weights, **fields) -> dict:
    return {"name": name, "arch": "resnet_digits", "weights": str(weights), **fields}


@pytest.fixture
def config(digits_weights, bundle_cache):
    return parse_config(
        {
            "server": {"grpc": {"enabled": False}, "cache_dir": str(bundle_cache)},
            "models": [
                digits_entry("digits-int8", digits_weights, precision="int8"),
                digits_entry("digits", digits_weights),
            ],
        }
    )


async def served_accuracy(client, model: str) -> float:
    split = load_digits_split()
    predicted = []
    for start in range(0, len(split.test_images), 60):
        files = [
            ("files", (f"{i}.png", png_bytes(image), "image/png"))
            for i, image in enumerate(split.test_images[start : start + 60], start)
        ]
        response = await client.post(f"/models/{model}/predict?top_k=1", files=files)
        assert response.status_code == 200, response.text
        predicted += [int(p[0]["label"]) for p in response.json()["predictions"]]
    return float(np.mean(np.array(predicted) == split.test_labels))


async def test_int8_digits_over_http_keep_fp32_accuracy(config):
    async with in_process(config, load_model) as (client, _):
        int8 = await served_accuracy(client, "digits-int8")
        fp32 = await served_accuracy(client, "digits")

    assert int8 >= 0.95
    assert abs(int8 - fp32) <= 0.005


async def test_models_metadata_config_and_summary_say_int8(config):
    async with in_process(config, load_model) as (client, _):
        listed = {m["name"]: m for m in (await client.get("/models")).json()["models"]}
        manifest = (await client.get("/models/digits-int8")).json()
        metadata = (await client.get("/v2/models/digits-int8")).json()
        triton = (await client.get("/v2/models/digits-int8/config")).json()
        summary = (await client.get("/models/digits-int8/summary")).text
        fp32_metadata = (await client.get("/v2/models/digits")).json()

    assert listed["digits-int8"]["precision"] == "int8"
    assert listed["digits"]["precision"] == "fp32"
    assert manifest["precision"] == "int8"
    assert manifest["precision_check"]["judged_by"] == "top1_agreement"
    assert metadata["parameters"]["precision"] == "int8"
    assert metadata["inputs"][0]["datatype"] == "FP32"  # QDQ keeps float inputs
    assert fp32_metadata["parameters"]["precision"] == "fp32"
    assert triton["parameters"]["precision"] == {"string_value": "int8"}
    assert triton["input"][0]["data_type"] == "TYPE_FP32"
    assert summary.endswith("Served precision: int8\n")


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"format": "torchscript", "precision": "int8"}, "precision 'int8' needs format 'onnx'"),
        ({"calibration": {"samples": 8}}, "calibration applies to a reduced precision"),
        ({"precision": "int8", "calibration": {"method": "kl"}}, r"calibration\.method"),
    ],
    ids=["torchscript", "fp32-with-calibration", "unknown-method"],
)
def test_int8_config_errors_name_the_problem(digits_weights, fields, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_config({"models": [digits_entry("digits", digits_weights, **fields)]})


def test_int8_without_calibration_images_is_refused_for_image_models():
    config = parse_config({"models": [{"name": "r", "arch": "resnet_tiny", "precision": "int8"}]})
    model = config.models[0]
    with pytest.raises(CalibrationError, match=r"calibration\.images: int8 needs a folder"):
        model_reduced_precision(model, network_of(model))


def test_calibration_folder_needs_held_out_images(tmp_path):
    (tmp_path / "one.png").write_bytes(png_bytes(np.zeros((8, 8), np.uint8)))
    config = parse_config(
        {
            "models": [
                {
                    "name": "r",
                    "arch": "resnet_tiny",
                    "precision": "int8",
                    "calibration": {"images": str(tmp_path), "samples": 1},
                }
            ]
        }
    )
    model = config.models[0]
    with pytest.raises(CalibrationError, match="holds 1 images; 1 calibration samples"):
        model_reduced_precision(model, network_of(model))


def test_calibration_folder_is_split_and_preprocessed_as_served(tmp_path):
    rng = np.random.default_rng(0)
    blobs = [png_bytes(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)) for _ in range(5)]
    for index, blob in enumerate(blobs):
        (tmp_path / f"{index}.png").write_bytes(blob)
    (tmp_path / "notes.txt").write_text("not an image")
    settings = CalibrationConfig(images=tmp_path, samples=3)
    preprocess = served_preprocess(
        PreprocessConfig(), model_default_cfg("resnet_tiny"), (3, 32, 32)
    )

    calibration = reduced_precision(settings, "int8", "resnet_tiny", preprocess)

    served = decode_images(blobs, preprocess, max_pixels=10_000)
    assert calibration.calibration.shape == (3, 3, 32, 32)
    assert calibration.held_out.shape == (2, 3, 32, 32)
    assert calibration.held_out_labels is None
    every_input = np.concatenate([calibration.calibration, calibration.held_out])
    assert sorted(map(bytes, every_input)) == sorted(map(bytes, served))  # each image once

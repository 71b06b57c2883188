"""`precision: fp16 | bf16` on a server: verified and served on the CUDA device, and on a machine
without one a clear refusal naming what is missing, while the other models serve on."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch
from service_fakes import in_process, png_bytes

from service.config import ConfigError, parse_config
from service.repository import load_model
from service.runtimes import DeviceUnavailableError
from service.runtimes.gpu import cuda_device

DIGIT = png_bytes(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
PNG = {"content-type": "image/png"}
NO_GPU = "runs on a CUDA GPU only"


def digits_entry(name: str, weights, **fields) -> dict:
    return {"name": name, "arch": "resnet_digits", "weights": str(weights), **fields}


@pytest.mark.parametrize(
    ("fmt", "missing"),
    [
        ("onnx", r"onnxruntime offers \[.*'CPUExecutionProvider'\], no CUDAExecutionProvider"),
        ("torchscript", r"torch .* sees no CUDA GPU"),
    ],
)
def test_without_a_gpu_the_device_check_names_what_is_missing(fmt, missing):
    with pytest.raises(
        DeviceUnavailableError, match=f"precision 'fp16' {NO_GPU}, and here {missing}"
    ):
        cuda_device(fmt, "auto", "fp16")


@pytest.mark.parametrize(("device", "expected"), [("auto", "cuda:0"), ("cuda:1", "cuda:1")])
def test_with_a_gpu_the_configured_cuda_device_is_chosen(monkeypatch, device, expected):
    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cuda_device("onnx", device, "fp16") == expected
    assert cuda_device("torchscript", device, "bf16") == expected


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {"precision": "fp16", "device": "cpu"},
            "precision 'fp16' runs on a CUDA device, not device 'cpu'",
        ),
        ({"precision": "bf16"}, "precision 'bf16' needs format 'torchscript'"),
        (
            {"precision": "fp16", "calibration": {"method": "entropy"}},
            r"calibration\.method applies to precision 'int8' only",
        ),
    ],
    ids=["cpu-device", "bf16-onnx", "int8-only-setting"],
)
def test_gpu_precision_config_errors_name_the_problem(digits_weights, fields, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_config({"models": [digits_entry("digits", digits_weights, **fields)]})


async def test_an_fp16_model_on_a_cpu_server_fails_to_load_saying_why(digits_weights, bundle_cache):
    config = parse_config(
        {
            "server": {"grpc": {"enabled": False}, "cache_dir": str(bundle_cache)},
            "models": [
                digits_entry("digits", digits_weights),
                digits_entry("digits-fp16", digits_weights, precision="fp16"),
            ],
        }
    )
    async with in_process(config, load_model) as (client, _):
        detail = (await client.get("/models/digits-fp16")).json()
        refused = await client.post("/models/digits-fp16/predict", content=DIGIT, headers=PNG)
        served = await client.post("/models/digits/predict", content=DIGIT, headers=PNG)

    assert detail["state"] == "FAILED"
    assert f"precision 'fp16' {NO_GPU}" in detail["reason"]
    assert refused.status_code == 503 and "FAILED" in refused.json()["error"]
    assert served.status_code == 200

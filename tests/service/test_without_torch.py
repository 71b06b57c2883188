"""The slim image's contract: a server without torch (or onnx) serves the bundles an earlier
export recorded, and refuses what needs an export with a message naming torch and the image."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from local_ports import free_port
from service_fakes import png_bytes
from sklearn.datasets import load_digits

from service.config import load_config
from service.repository import load_model

# Top-level packages the slim image does not install; importing any of them raises.
BLOCKED_PACKAGES = ("torch", "onnx", "onnxscript")
SLIM_ERROR = (
    "needs an export, which needs torch: this is the slim image; "
    "use the full image or export in the build"
)
STARTUP_TIMEOUT_S = 120
API_TOKEN = "api-token-for-the-slim-tests"


@pytest.fixture(scope="module")
def slim_config(tmp_path_factory, digits_weights) -> Path:
    """digits (exported here, with torch, and so recorded in the cache); digits_batch8 and tiny
    (never exported)."""
    directory = tmp_path_factory.mktemp("slim")
    config = directory / "models.yaml"
    digits = {"name": "digits", "arch": "resnet_digits", "weights": str(digits_weights)}
    # The same network and weights, but a batch limit the recorded bundle was not exported for.
    digits_batch8 = {**digits, "name": "digits_batch8", "batching": {"max_batch_size": 8}}
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"cache_dir": str(directory / "bundles"), "grpc": {"enabled": False}},
                "models": [digits, digits_batch8, {"name": "tiny", "arch": "resnet_tiny"}],
            }
        )
    )
    repository = load_config(config)
    load_model(repository.models[0], repository.server, progress=lambda message: None)
    return config


@pytest.fixture(scope="module")
def without_torch(tmp_path_factory) -> dict[str, str]:
    """An environment whose Python finds packages that raise ImportError in place of torch,
    onnx and onnxscript."""
    blockers = tmp_path_factory.mktemp("blocked-packages")
    for package in BLOCKED_PACKAGES:
        (blockers / package).mkdir()
        (blockers / package / "__init__.py").write_text(
            f"raise ImportError('{package} is blocked: the slim image does not install it')\n"
        )
    path = os.pathsep.join([str(blockers), str(Path.cwd())])
    return {**os.environ, "PYTHONPATH": path, "BLOCKSERVE_API_TOKEN": API_TOKEN}


@pytest.fixture(scope="module")
def slim_server(slim_config, without_torch) -> Iterator[str]:
    port = free_port()
    log_path = slim_config.parent / "server.log"
    command = [sys.executable, "-m", "service.cli", "serve", "--config", str(slim_config),
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=without_torch)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_loaded(base_url, process, log_path)
        yield base_url
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=30)


def _wait_until_loaded(base_url: str, process: subprocess.Popen, log_path: Path) -> None:
    """Until both models left LOADING (tiny fails, so strict readiness never comes)."""
    give_up = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log_path.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            models = httpx.get(f"{base_url}/models", timeout=2).json()["models"]
            if all(model["state"] != "LOADING" for model in models):
                return
        time.sleep(0.2)
    raise TimeoutError(f"models still loading after {STARTUP_TIMEOUT_S} s: {log_path.read_text()}")


def test_the_blocked_packages_cannot_be_imported(without_torch):
    for package in BLOCKED_PACKAGES:
        result = subprocess.run(
            [sys.executable, "-c", f"import {package}"], env=without_torch, capture_output=True
        )
        assert result.returncode != 0, package


def test_a_recorded_bundle_serves_predict_without_torch(slim_server):
    digits = load_digits()
    pixels = (digits.images[:5] * (255 / 16)).astype(np.uint8)
    files = [
        ("files", (f"{i}.png", png_bytes(image), "image/png")) for i, image in enumerate(pixels)
    ]
    response = httpx.post(f"{slim_server}/predict", files=files, timeout=30)
    assert response.status_code == 200, response.text
    top = [prediction[0]["label"] for prediction in response.json()["predictions"]]
    assert top == [str(label) for label in digits.target[:5]]


def test_v2_metadata_and_inference_work_without_torch(slim_server):
    metadata = httpx.get(f"{slim_server}/v2/models/digits", timeout=10).json()
    assert metadata["platform"] == "onnxruntime_onnx"
    request = {
        "inputs": [
            {"name": "input", "shape": [2, 1, 8, 8], "datatype": "FP32", "data": [0.0] * 128}
        ]
    }
    response = httpx.post(f"{slim_server}/v2/models/digits/infer", json=request, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"] == [2, 10]


def test_the_summary_comes_from_the_bundle_without_torch(slim_server):
    text = httpx.get(f"{slim_server}/models/digits/summary?format=text", timeout=10)
    assert text.status_code == 200, text.text
    assert "Total params" in text.text
    diagram = httpx.get(f"{slim_server}/models/digits/summary?format=mermaid", timeout=10)
    assert diagram.status_code == 200 and diagram.text.startswith("flowchart")


def test_a_model_that_needs_an_export_fails_naming_torch_and_the_image(slim_server):
    models = {model["name"]: model for model in httpx.get(f"{slim_server}/models").json()["models"]}
    assert models["digits"]["state"] == "READY"
    for name in ("digits_batch8", "tiny"):
        assert models[name]["state"] == "FAILED"
        assert f"model {name!r} {SLIM_ERROR}" in models[name]["reason"]
    response = httpx.post(f"{slim_server}/predict?model=tiny", files=[], timeout=10)
    assert response.status_code == 503
    assert f"model 'tiny' {SLIM_ERROR}" in response.json()["error"]


def test_loading_a_model_at_run_time_is_refused_naming_torch_and_the_image(slim_server):
    response = httpx.put(
        f"{slim_server}/models/tiny2",
        json={"arch": "resnet_tiny"},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=30,
    )
    assert response.status_code == 409
    assert response.json()["error"] == (
        "model 'tiny2' needs its network built, which needs torch: this is the slim image; "
        "use the full image or export in the build"
    )

"""A real blockserve (HTTP and gRPC) serving the trained digits model, the stock clients' venv
(scripts/client_venv.sh), and the reference answers: ONNX Runtime on the served bundle."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml

from service.config import parse_config
from service.repository import load_model

PROJECT = Path(__file__).resolve().parents[2]
CLIENTS = Path(__file__).resolve().parent
SCRIPT_TIMEOUT_S = 300
INPUT_SEED = 0
BATCH = 3
MANAGEMENT_TOKEN = "client-tests-api-token"  # the server's API token: loads and unloads


@dataclass(frozen=True)
class Blockserve:
    http_address: str
    grpc_address: str


@dataclass(frozen=True)
class Reference:
    """What the served model answers for `images`, computed in this process."""

    images_path: Path
    logits: np.ndarray
    labels: list[str]
    input_shape: tuple[int, ...]


@pytest.fixture(scope="session")
def client_python() -> Path:
    """The client venv's python, made (or found up to date) by scripts/client_venv.sh."""
    made = subprocess.run(
        ["bash", str(PROJECT / "scripts" / "client_venv.sh")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if made.returncode != 0:
        pytest.fail(f"scripts/client_venv.sh failed:\n{made.stderr[-4000:]}")
    return Path(made.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def server_process(load_module) -> ModuleType:
    return load_module(PROJECT / "tests" / "service" / "server_process.py")


@pytest.fixture(scope="session")
def serving_config(digits_weights, server_process, tmp_path_factory) -> dict[str, Any]:
    """models.yaml content: the trained digits model (tests/conftest.py), gRPC on, management
    by `MANAGEMENT_TOKEN`."""
    return {
        "server": {
            "cache_dir": str(tmp_path_factory.mktemp("client-bundles")),
            "grpc": {"enabled": True, "port": server_process.free_port()},
            "auth": {"token": MANAGEMENT_TOKEN},
        },
        "models": [{"name": "digits", "arch": "resnet_digits", "weights": str(digits_weights)}],
    }


@pytest.fixture(scope="session")
def blockserve(serving_config, server_process, tmp_path_factory) -> Iterator[Blockserve]:
    directory = tmp_path_factory.mktemp("client-server")
    path = directory / "models.yaml"
    path.write_text(yaml.safe_dump(serving_config))
    grpc_port = serving_config["server"]["grpc"]["port"]
    with server_process.serve(path, directory) as server:
        yield Blockserve(f"127.0.0.1:{server.port}", f"127.0.0.1:{grpc_port}")
        if server.process.poll() is not None:
            pytest.fail(f"blockserve exited during the client tests:\n{server.log()}")


@pytest.fixture(scope="session")
def reference(serving_config, blockserve, tmp_path_factory) -> Reference:
    """Logits of ONNX Runtime on the bundle the server exported (the cache is warm by now)."""
    config = parse_config(serving_config)
    loaded = load_model(config.models[0], config.server, lambda _: None)
    shape = (BATCH, *loaded.input_shape)
    images = np.random.default_rng(INPUT_SEED).standard_normal(shape).astype(np.float32)
    path = tmp_path_factory.mktemp("client-inputs") / "images.npy"
    np.save(path, images)
    logits = loaded.runtimes[0].run(images)
    return Reference(path, logits, list(loaded.labels), tuple(loaded.input_shape))


@pytest.fixture(scope="session")
def run_client_script(client_python) -> Callable[..., dict[str, Any]]:
    """Run a tests/clients script in the client venv; its JSON outcomes, cached per arguments."""
    outcomes: dict[tuple[str, ...], dict[str, Any]] = {}

    def run(script: str, *arguments: str) -> dict[str, Any]:
        key = (script, *arguments)
        if key not in outcomes:
            command = [str(client_python), str(CLIENTS / script), *arguments]
            done = subprocess.run(command, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S)
            if done.returncode != 0:
                pytest.fail(f"{script} {arguments} exited {done.returncode}:\n{done.stderr}")
            outcomes[key] = json.loads(done.stdout)
        return outcomes[key]

    return run

"""A client generated from blockserve's OpenAPI document by openapi-python-client, calling the V2
operations; runs in the client venv.

Usage: python openapi_cases.py GENERATED_DIR PACKAGE HTTP_ADDRESS INPUTS_NPY
Each case calls one generated operation (found by its operationId) and reports the HTTP status
and the answer as the generated model parsed it. Prints one JSON object: case name ->
{"result": ...} or {"error": "..."}.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import httpx
import numpy as np
from case_outcomes import outcome

MODEL = "digits"
VERSION = "1"
UNKNOWN_MODEL = "no-such-model"
WAIT_S = 30.0


class Generated:
    """The generated package: its client and its operations by operationId."""

    def __init__(self, package: str, http_address: str):
        self.package = package
        client_module = importlib.import_module(package)
        self.client = client_module.Client(
            base_url=f"http://{http_address}", timeout=httpx.Timeout(WAIT_S)
        )

    def operation(self, operation_id: str) -> ModuleType:
        api = importlib.import_module(f"{self.package}.api")
        for tag in pkgutil.iter_modules(api.__path__):
            name = f"{self.package}.api.{tag.name}.{operation_id}"
            if importlib.util.find_spec(name) is not None:
                return importlib.import_module(name)
        raise LookupError(f"no generated operation {operation_id!r}")

    def call(self, operation_id: str, **arguments: Any) -> dict[str, Any]:
        response = self.operation(operation_id).sync_detailed(client=self.client, **arguments)
        parsed = response.parsed
        return {
            "status": int(response.status_code),
            "parsed_as": type(parsed).__name__,
            "parsed": parsed.to_dict() if hasattr(parsed, "to_dict") else parsed,
        }

    def model(self, name: str) -> Any:
        return getattr(importlib.import_module(f"{self.package}.models"), name)


def inference_request(generated: Generated, images: np.ndarray, request_id: str) -> Any:
    tensor = {"name": "input", "shape": list(images.shape), "datatype": "FP32",
              "data": images.ravel().tolist()}  # fmt: skip
    return generated.model("InferenceRequest").from_dict({"id": request_id, "inputs": [tensor]})


def cases(generated: Generated, images: np.ndarray) -> dict[str, Callable[[], Any]]:
    model = {"name": MODEL}
    version = {"name": MODEL, "version": VERSION}
    wrong_shape = images[:, :, :-1]
    return {
        "server_live": lambda: generated.call("server_live"),
        "server_ready": lambda: generated.call("server_ready"),
        "server_metadata": lambda: generated.call("server_metadata"),
        "model_ready": lambda: generated.call("model_ready", **model),
        "model_metadata": lambda: generated.call("model_metadata", **model),
        "model_config": lambda: generated.call("model_config", **model),
        "model_stats": lambda: generated.call("model_stats", **model),
        "models_stats": lambda: generated.call("models_stats"),
        "model_version_ready": lambda: generated.call("model_version_ready", **version),
        "model_version_metadata": lambda: generated.call("model_version_metadata", **version),
        "model_version_config": lambda: generated.call("model_version_config", **version),
        "model_version_stats": lambda: generated.call("model_version_stats", **version),
        "model_infer": lambda: generated.call(
            "model_infer", **model, body=inference_request(generated, images, "openapi")
        ),
        "model_version_infer": lambda: generated.call(
            "model_version_infer", **version, body=inference_request(generated, images, "v1")
        ),
        "unknown_model_infer": lambda: generated.call(
            "model_infer", name=UNKNOWN_MODEL, body=inference_request(generated, images, "x")
        ),
        "wrong_shape_infer": lambda: generated.call(
            "model_infer", **model, body=inference_request(generated, wrong_shape, "bad")
        ),
    }


def main() -> None:
    generated_dir, package, http_address, inputs_path = sys.argv[1:5]
    sys.path.insert(0, generated_dir)
    images = np.load(inputs_path).astype(np.float32)
    generated = Generated(package, http_address)
    outcomes = {name: outcome(call) for name, call in cases(generated, images).items()}
    print(json.dumps(outcomes, default=str))


if __name__ == "__main__":
    main()

"""Open Inference Protocol V2 over REST against the container, as a standard V2 client sees it."""

from __future__ import annotations

import httpx
import numpy as np
from container_images import held_out_digits

from models.digits import load_digits_split, to_model_input


def test_server_metadata_and_health(client: httpx.Client) -> None:
    metadata = client.get("/v2")
    assert metadata.status_code == 200, metadata.text
    assert {"name", "version", "extensions"} <= set(metadata.json())
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/digits/ready").status_code == 200


def test_model_metadata_has_a_dynamic_batch_dimension(client: httpx.Client) -> None:
    response = client.get("/v2/models/digits")
    assert response.status_code == 200, response.text
    metadata = response.json()
    assert metadata["name"] == "digits"
    (tensor,) = metadata["inputs"]
    assert tensor["datatype"] == "FP32"
    assert tensor["shape"] == [-1, 1, 8, 8]
    assert metadata["outputs"][0]["shape"] == [-1, 10]


def test_infer_fp32_classifies_the_held_out_digits(client: httpx.Client) -> None:
    split = load_digits_split()
    batch = to_model_input(split.test_images).numpy()  # (N, 1, 8, 8), as the server preprocesses
    input_name = client.get("/v2/models/digits").json()["inputs"][0]["name"]
    request = {
        "inputs": [
            {
                "name": input_name,
                "shape": list(batch.shape),
                "datatype": "FP32",
                "data": batch.ravel().tolist(),
            }
        ]
    }
    response = client.post("/v2/models/digits/infer", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "digits"
    (output,) = body["outputs"]
    assert output["datatype"] == "FP32"
    assert output["shape"] == [len(batch), 10]
    logits = np.asarray(output["data"], np.float32).reshape(output["shape"])
    assert (logits.argmax(axis=1) == split.test_labels).mean() >= 0.95


def test_infer_accepts_nested_data_and_matches_predict(client: httpx.Client) -> None:
    split = load_digits_split()
    batch = to_model_input(split.test_images[:3]).numpy()
    input_name = client.get("/v2/models/digits").json()["inputs"][0]["name"]
    request = {
        "inputs": [
            {"name": input_name, "shape": [3, 1, 8, 8], "datatype": "FP32", "data": batch.tolist()}
        ]
    }
    response = client.post("/v2/models/digits/infer", json=request)
    assert response.status_code == 200, response.text
    logits = np.asarray(response.json()["outputs"][0]["data"], np.float32).reshape(3, 10)

    pngs, _ = held_out_digits()
    files = [("files", (f"{i}.png", png, "image/png")) for i, png in enumerate(pngs[:3])]
    predicted = client.post("/predict", files=files).json()["predictions"]
    assert logits.argmax(axis=1).tolist() == [ranked[0]["index"] for ranked in predicted]


def test_infer_with_a_wrong_shape_is_400_with_an_error(client: httpx.Client) -> None:
    input_name = client.get("/v2/models/digits").json()["inputs"][0]["name"]
    request = {
        "inputs": [
            {"name": input_name, "shape": [1, 1, 4, 4], "datatype": "FP32", "data": [0.0] * 16}
        ]
    }
    response = client.post("/v2/models/digits/infer", json=request)
    assert response.status_code == 400
    assert "shape" in response.json()["error"].lower()


def test_infer_on_an_unknown_model_is_404(client: httpx.Client) -> None:
    response = client.post("/v2/models/nope/infer", json={"inputs": []})
    assert response.status_code == 404
    assert "error" in response.json()

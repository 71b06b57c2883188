"""Model listing, manifests and summaries served by the container."""

from __future__ import annotations

import httpx


def test_models_lists_digits_trained_and_resnet18_untrained_both_ready(
    client: httpx.Client,
) -> None:
    response = client.get("/models")
    assert response.status_code == 200, response.text
    models = {entry["name"]: entry for entry in response.json()["models"]}
    assert models["digits"]["state"] == "READY"
    assert models["digits"]["trained"] is True
    assert models["resnet18"]["state"] == "READY"
    assert models["resnet18"]["trained"] is False


def test_health_endpoints_answer_ok(client: httpx.Client) -> None:
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200


def test_summary_as_text_is_the_torchsummary_table(client: httpx.Client) -> None:
    response = client.get("/models/digits/summary", params={"format": "text"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "Total params" in response.text
    assert "Conv2d-1" in response.text


def test_summary_as_json_counts_the_parameters(client: httpx.Client) -> None:
    text = client.get("/models/digits/summary", params={"format": "text"}).text
    response = client.get("/models/digits/summary", params={"format": "json"})
    assert response.status_code == 200, response.text
    summary = response.json()
    total = summary["totals"]["total_params"]
    assert total > 0
    assert any(row["type"] == "Conv2d" for row in summary["rows"])
    assert f"Total params: {total:,}" in text
    assert summary["input_size"] == [[1, 8, 8]]


def test_summary_of_an_unknown_model_is_404(client: httpx.Client) -> None:
    response = client.get("/models/nope/summary")
    assert response.status_code == 404, response.text

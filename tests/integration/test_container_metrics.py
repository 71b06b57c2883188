"""/metrics of the container: Prometheus text that counts what the suite sends."""

from __future__ import annotations

import httpx
from container_images import held_out_digits
from container_metrics import counter


def test_metrics_count_predict_requests_and_batches(client: httpx.Client) -> None:
    png = held_out_digits()[0][0]
    before = client.get("/metrics").text
    for _ in range(3):
        response = client.post("/predict", content=png, headers={"Content-Type": "image/png"})
        assert response.status_code == 200, response.text
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text

    ok = {"model": "digits", "status": "200", "protocol": "rest"}
    requests = "blockserve_requests_total"
    assert counter(after, requests, **ok) - counter(before, requests, **ok) == 3
    batches = "blockserve_batch_size_count"
    assert counter(after, batches, model="digits") >= counter(before, batches, model="digits") + 1


def test_metrics_expose_latency_histograms_queue_depth_and_model_state(
    client: httpx.Client,
) -> None:
    metrics = client.get("/metrics").text
    for name in (
        "blockserve_queue_seconds_bucket",
        "blockserve_compute_seconds_bucket",
        "blockserve_request_seconds_bucket",
        "blockserve_batch_size_bucket",
        "blockserve_queue_depth",
    ):
        assert name in metrics, name
    state = "blockserve_model_state"
    assert counter(metrics, state, model="digits", **{state: "READY"}) == 1

"""The REST API in-process (httpx + ASGITransport, lifespan driven) over fake runtimes."""

from __future__ import annotations

import asyncio
import base64
import threading

import httpx
import numpy as np
import pytest
from service_fakes import FakeRuntime, fake_loader, in_process, metric, png_bytes, repository_config

from service.app import create_app

DIGIT = png_bytes(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
PNG = {"content-type": "image/png"}


async def queued(serving, images: int, model: str = "digits") -> None:
    """Wait until `images` images wait in the model's queue."""
    batchers = serving.repository.get(model).batchers
    for _ in range(2000):
        if sum(b.queued_images for b in batchers) >= images:
            return
        await asyncio.sleep(0.005)
    raise TimeoutError(f"{images} images never queued")


@pytest.fixture
def config(tmp_path):
    return repository_config(tmp_path, {"labels": [str(i) for i in range(10)], "top_k": 3})


async def test_predict_raw_png_answers_top_k_softmax_predictions(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post("/predict", content=DIGIT, headers=PNG)

    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "digits"
    (prediction,) = body["predictions"]
    # The fake's logits: [sum of the normalised pixels, batch size 1, 0, ..., 0].
    normalised = (np.arange(64) * 4 / 255 - 0.5) / 0.5
    logits = np.array([normalised.sum(), 1.0] + [0.0] * 8)
    softmax = np.exp(logits) / np.exp(logits).sum()
    assert [p["index"] for p in prediction] == [1, 2, 3]  # ties keep index order
    assert [p["label"] for p in prediction] == ["1", "2", "3"]
    assert [p["score"] for p in prediction] == pytest.approx(softmax[[1, 2, 3]], rel=1e-5)


async def test_top_k_larger_than_the_class_count_is_clamped(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post("/predict?top_k=500", content=DIGIT, headers=PNG)

    (prediction,) = response.json()["predictions"]
    assert len(prediction) == 10
    assert sum(p["score"] for p in prediction) == pytest.approx(1.0)


async def test_multipart_with_several_files_answers_one_prediction_list_per_image(config, runtime):
    files = [("files", (f"{i}.png", DIGIT, "image/png")) for i in range(3)]
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post("/models/digits/predict?top_k=1", files=files)

    assert response.status_code == 200
    assert [len(p) for p in response.json()["predictions"]] == [1, 1, 1]


async def test_json_base64_and_data_urls_are_accepted(config, runtime):
    encoded = base64.b64encode(DIGIT).decode()
    images = [encoded, f"data:image/png;base64,{encoded}"]
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post("/predict", json={"images": images})

    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 2


@pytest.mark.parametrize(
    ("content", "headers", "status", "needle"),
    [
        (b"definitely not an image", PNG, 400, "cannot identify image"),
        (b"\x89PNG\r\n\x1a\n garbage", PNG, 400, "corrupt image"),
        (DIGIT[: len(DIGIT) // 2], PNG, 400, "corrupt"),
        (b"", PNG, 400, "empty image"),
        (DIGIT, {"content-type": "text/plain"}, 415, "unsupported Content-Type 'text/plain'"),
        (DIGIT, {}, 415, "missing Content-Type"),
        (b'{"images": ["%%%"]}', {"content-type": "application/json"}, 400, "images[0] is not"),
        (b'{"images": [1]}', {"content-type": "application/json"}, 400, "images[0] must be"),
        (b"{not json", {"content-type": "application/json"}, 400, "not valid JSON"),
        (b'{"pictures": []}', {"content-type": "application/json"}, 400, '{"images"'),
        (DIGIT, {**PNG, "x-request-timeout-ms": "soon"}, 400, "X-Request-Timeout-Ms"),
        (DIGIT, {"content-type": "multipart/form-data"}, 400, "without a boundary"),
    ],
)
async def test_bad_input_answers_its_4xx_with_a_json_error_naming_the_problem(
    config, runtime, content, headers, status, needle
):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post("/predict", content=content, headers=headers)
        alive = await client.post("/predict", content=DIGIT, headers=PNG)

    assert response.status_code == status
    assert needle in response.json()["error"]
    assert alive.status_code == 200


async def test_multipart_part_that_is_not_an_image_is_unsupported(config, runtime):
    files = {"notes": ("notes.txt", b"hello", "text/plain")}
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post("/predict", files=files)
    assert response.status_code == 415
    assert "notes.txt" in response.json()["error"]


async def test_limits_answer_413(tmp_path, runtime):
    limits = {"max_body_bytes": 4096, "max_image_pixels": 100, "max_images_per_request": 2}
    config = repository_config(tmp_path, {}, limits=limits)
    big = png_bytes(np.zeros((20, 20), np.uint8))
    async with in_process(config, fake_loader(runtime)) as (client, _):
        body = await client.post("/predict", content=b"x" * 5000, headers=PNG)
        pixels = await client.post("/predict", content=big, headers=PNG)
        count = await client.post(
            "/predict", files=[("f", (f"{i}.png", DIGIT, "image/png")) for i in range(3)]
        )

    assert body.status_code == 413 and "4096-byte limit" in body.json()["error"]
    assert pixels.status_code == 413 and "20x20 = 400 pixels" in pixels.json()["error"]
    assert count.status_code == 413 and "3 images" in count.json()["error"]


async def test_unknown_model_answers_404_naming_the_available_models(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        by_query = await client.post("/predict?model=nope", content=DIGIT, headers=PNG)
        by_path = await client.post("/models/nope/predict", content=DIGIT, headers=PNG)
        summary = await client.get("/models/nope/summary")

    for response in (by_query, by_path, summary):
        assert response.status_code == 404
        assert response.json() == {
            "error": "unknown model 'nope'; available models: 'digits'",
            "available": ["digits"],
        }


async def test_invalid_query_parameters_answer_400(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        top_k = await client.post("/predict?top_k=0", content=DIGIT, headers=PNG)
        fmt = await client.get("/models/digits/summary?format=pdf")
    assert top_k.status_code == 400 and "top_k" in top_k.json()["error"]
    assert fmt.status_code == 400 and "format" in fmt.json()["error"]


async def test_readiness_waits_for_the_default_model(config, runtime):
    gate = threading.Event()
    async with in_process(config, fake_loader(runtime, gate=gate), wait=False) as (client, serving):
        live = await client.get("/health/live")
        loading = await client.get("/health/ready")
        v2_loading = await client.get("/v2/health/ready")
        model_loading = await client.get("/v2/models/digits/ready")
        config_loading = await client.get("/v2/models/digits/config")
        predict_loading = await client.post("/predict", content=DIGIT, headers=PNG)
        gate.set()
        await serving.repository.wait_loaded()
        ready = await client.get("/health/ready")
        v2_ready = await client.get("/v2/health/ready")

    assert live.status_code == 200
    assert loading.status_code == 503 and loading.json()["state"] == "LOADING"
    assert v2_loading.status_code == 400 and v2_loading.json() == {"ready": False}
    assert model_loading.status_code == 400
    assert model_loading.json() == {"name": "digits", "ready": False}
    assert config_loading.status_code == 503 and "LOADING" in config_loading.json()["error"]
    assert predict_loading.status_code == 503 and "LOADING" in predict_loading.json()["error"]
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert v2_ready.status_code == 200 and v2_ready.json() == {"ready": True}


async def test_failed_model_is_reported_with_its_reason_and_the_others_still_serve(
    tmp_path, runtime
):
    config = repository_config(tmp_path, {}, {"name": "broken", "arch": "resnet_digits"})
    loader = fake_loader(runtime, failures={"broken": "weights exploded"})
    async with in_process(config, loader) as (client, _):
        models = (await client.get("/models")).json()
        ready = await client.get("/v2/models/broken/ready")
        predict = await client.post("/models/broken/predict", content=DIGIT, headers=PNG)
        healthy = await client.post("/predict", content=DIGIT, headers=PNG)
        metrics = (await client.get("/metrics")).text

    states = {m["name"]: (m["state"], m["reason"]) for m in models["models"]}
    assert states == {
        "digits": ("READY", None),
        "broken": ("FAILED", "RuntimeError while loading (see the server log)"),
    }
    assert ready.status_code == 400 and ready.json() == {"name": "broken", "ready": False}
    assert predict.status_code == 503
    assert predict.json()["error"] == (
        "model 'broken' is not ready (FAILED): RuntimeError while loading (see the server log)"
    )
    assert healthy.status_code == 200
    state = "blockserve_model_state"
    assert metric(metrics, state, model="broken", blockserve_model_state="FAILED") == 1


async def test_models_lists_format_device_batching_and_untrained_flag(tmp_path, runtime):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")
    config = repository_config(
        tmp_path, {"weights": str(weights)}, {"name": "raw", "arch": "resnet_digits"}
    )
    async with in_process(config, fake_loader(runtime)) as (client, _):
        models = (await client.get("/models")).json()
        manifest = await client.get("/models/raw")

    by_name = {m["name"]: m for m in models["models"]}
    assert models["default"] == "digits"
    assert by_name["digits"]["trained"] is True
    assert by_name["raw"]["trained"] is False and by_name["raw"]["weights"] == "random-init"
    assert by_name["raw"]["format"] == "onnx" and by_name["raw"]["device"] == "cpu"
    assert by_name["raw"]["batching"] == {
        "max_batch_size": 16,
        "max_delay_ms": 2.0,
        "max_queue": 256,
        "inline_max_ms": 0.25,
    }
    assert manifest.json()["weights"]["trained"] is False


async def test_full_queue_answers_503_with_retry_after_and_loses_no_accepted_request(
    tmp_path,
):
    runtime = FakeRuntime(blocked=True, num_classes=10)
    config = repository_config(tmp_path, {"batching": {"max_batch_size": 2, "max_queue": 3}})
    async with in_process(config, fake_loader(runtime)) as (client, serving):
        first = asyncio.create_task(client.post("/predict", content=DIGIT, headers=PNG))
        await asyncio.to_thread(runtime.wait_started)
        rest = [
            asyncio.create_task(client.post("/predict", content=DIGIT, headers=PNG))
            for _ in range(8)
        ]
        batcher = serving.repository.get("digits").batchers[0]
        while sum(task.done() for task in rest) + batcher.queued_images < len(rest):
            await asyncio.sleep(0.01)
        runtime.gate.set()
        responses = [await first, *await asyncio.gather(*rest)]
        metrics = (await client.get("/metrics")).text

    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 4  # the running one + a full queue of 3
    assert statuses.count(503) == 5
    for refused in (r for r in responses if r.status_code == 503):
        assert refused.headers["retry-after"] == "1"
        assert "max_queue 3" in refused.json()["error"]
    assert metric(metrics, "blockserve_requests_total", model="digits", status="200") == 4
    assert metric(metrics, "blockserve_requests_total", model="digits", status="503") == 5


async def test_request_timeout_header_answers_504_and_skips_compute(config):
    runtime = FakeRuntime(blocked=True, num_classes=10)
    async with in_process(config, fake_loader(runtime)) as (client, _):
        first = asyncio.create_task(client.post("/predict", content=DIGIT, headers=PNG))
        await asyncio.to_thread(runtime.wait_started)
        late = await client.post(
            "/predict", content=DIGIT, headers={**PNG, "x-request-timeout-ms": "30"}
        )
        runtime.gate.set()
        assert (await first).status_code == 200

    assert late.status_code == 504
    assert "deadline exceeded" in late.json()["error"]
    assert len(runtime.seen) == 1  # the expired request never reached the runtime


async def test_failing_batch_answers_500_without_its_text_and_serving_continues(config, caplog):
    class Flaky(FakeRuntime):
        calls = 0

        def run(self, batch):
            self.calls += 1
            if self.calls == 1:
                raise MemoryError("out of arena")
            return super().run(batch)

    runtime = Flaky(num_classes=10)
    async with in_process(config, fake_loader(runtime)) as (client, _):
        failed = await client.post("/predict", content=DIGIT, headers=PNG)
        served = await client.post("/predict", content=DIGIT, headers=PNG)

    assert failed.status_code == 500
    assert failed.json() == {"error": "inference failed in model 'digits' (see the server log)"}
    assert "MemoryError: out of arena" in caplog.text  # the log keeps what the client is not told
    assert served.status_code == 200


async def test_concurrent_requests_form_batches_larger_than_one(tmp_path):
    runtime = FakeRuntime(blocked=True, num_classes=10)
    config = repository_config(tmp_path, {"batching": {"max_batch_size": 8}})
    async with in_process(config, fake_loader(runtime)) as (client, serving):
        first = asyncio.create_task(client.post("/predict", content=DIGIT, headers=PNG))
        await asyncio.to_thread(runtime.wait_started)
        crowd = [
            asyncio.create_task(client.post("/predict", content=DIGIT, headers=PNG))
            for _ in range(6)
        ]
        await queued(serving, 6)
        runtime.gate.set()
        responses = [await first, *await asyncio.gather(*crowd)]
        metrics = (await client.get("/metrics")).text

    assert all(r.status_code == 200 for r in responses)
    batches = metric(metrics, "blockserve_batch_size_count", model="digits")
    images = metric(metrics, "blockserve_batch_size_sum", model="digits")
    singles = metric(metrics, "blockserve_batch_size_bucket", model="digits", le="1.0")
    assert images == 7
    assert batches < 7 and singles < batches  # at least one batch held several requests
    assert max(runtime.batch_sizes) > 1


async def test_lone_request_never_waits_max_delay(tmp_path, runtime):
    an_hour = 3_600_000
    config = repository_config(tmp_path, {"batching": {"max_delay_ms": an_hour}})
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.post("/predict", content=DIGIT, headers=PNG)
        metrics = (await client.get("/metrics")).text

    assert response.status_code == 200
    assert metric(metrics, "blockserve_batch_size_count", model="digits") == 1
    assert metric(metrics, "blockserve_batch_size_sum", model="digits") == 1
    assert metric(metrics, "blockserve_queue_seconds_count", model="digits") == 1
    assert metric(metrics, "blockserve_queue_seconds_sum", model="digits") < 1.0  # << an hour


async def test_metrics_count_requests_by_model_status_and_protocol(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        await client.post("/predict", content=DIGIT, headers=PNG)
        await client.post("/predict", content=b"junk", headers=PNG)
        response = await client.get("/metrics")

    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    labels = {"model": "digits", "protocol": "rest"}
    assert metric(text, "blockserve_requests_total", status="200", **labels) == 1
    assert metric(text, "blockserve_requests_total", status="400", **labels) == 1
    assert metric(text, "blockserve_request_seconds_count", **labels) == 2
    assert metric(text, "blockserve_compute_seconds_count", model="digits") == 1
    assert metric(text, "blockserve_queue_depth", model="digits", instance="0") == 0


async def test_openapi_docs_are_served(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        docs = await client.get("/docs")
        schema = (await client.get("/openapi.json")).json()

    assert docs.status_code == 200
    assert {"/predict", "/models", "/v2/models/{name}/infer", "/metrics"} <= set(schema["paths"])
    assert "multipart/form-data" in schema["paths"]["/predict"]["post"]["requestBody"]["content"]


async def test_unknown_route_answers_json_404(config, runtime):
    async with in_process(config, fake_loader(runtime)) as (client, _):
        response = await client.get("/nowhere")
    assert response.status_code == 404 and response.json() == {"error": "Not Found"}


# A raw ASGI `POST /predict` of a PNG, for tests that script the client's messages themselves;
# copy it per call.
PREDICT_PNG_SCOPE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
    "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
    "root_path": "", "headers": [(b"content-type", b"image/png")],
    "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
}  # fmt: skip


async def test_client_that_disconnects_is_dropped_before_compute(config):
    runtime = FakeRuntime(blocked=True, num_classes=10)
    app = create_app(config, loader=fake_loader(runtime))
    gone = asyncio.Event()
    sent: list[dict] = []

    async def receive() -> dict:
        if not sent and not receive.body_sent:
            receive.body_sent = True
            return {"type": "http.request", "body": DIGIT, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    receive.body_sent = False

    async def send(message: dict) -> None:
        sent.append(message)

    scope = dict(PREDICT_PNG_SCOPE)  # the app adds keys to its scope
    async with app.router.lifespan_context(app):
        await app.state.serving.repository.wait_loaded()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://blockserve") as client:
            busy = asyncio.create_task(client.post("/predict", content=DIGIT, headers=PNG))
            await asyncio.to_thread(runtime.wait_started)
            leaving = asyncio.create_task(app(scope, receive, send))
            batcher = app.state.serving.repository.get("digits").batchers[0]
            while batcher.queued_images == 0:
                await asyncio.sleep(0.005)
            gone.set()
            await leaving
            queued_after_leaving = batcher.queued_images
            runtime.gate.set()
            assert (await busy).status_code == 200
            metrics = (await client.get("/metrics")).text

    assert queued_after_leaving == 0
    assert len(runtime.seen) == 1  # the departed request never reached the runtime
    assert sent[0]["status"] == 499
    assert metric(metrics, "blockserve_requests_total", model="digits", status="499") == 1


async def test_client_that_disconnects_mid_body_is_answered_499_without_an_error_log(
    config, runtime, caplog
):
    app = create_app(config, loader=fake_loader(runtime))
    messages = iter(
        [
            {"type": "http.request", "body": DIGIT[:10], "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[dict] = []

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = dict(PREDICT_PNG_SCOPE)  # the app adds keys to its scope
    async with app.router.lifespan_context(app):
        await app.state.serving.repository.wait_loaded()
        await app(scope, receive, send)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://blockserve") as client:
            metrics = (await client.get("/metrics")).text

    assert sent[0]["status"] == 499
    assert runtime.seen == []
    assert metric(metrics, "blockserve_requests_total", model="digits", status="499") == 1
    assert not [record for record in caplog.records if record.levelname == "ERROR"]

"""gRPC inside the FastAPI app: started by the lifespan, sharing batchers and metrics with REST."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_harness import (
    call_error,
    images,
    infer_request,
    output_array,
    refused,
    wait_for,
)
from local_ports import free_port

from service.app import create_app
from service.config import ModelConfig, VersionPolicy
from service.grpc.generated import grpc_service_pb2 as pb
from service.grpc.generated.grpc_service_pb2_grpc import GRPCInferenceServiceStub

DIGIT_SHAPE = (1, 8, 8)  # resnet_digits, the model the REST test fakes describe


@pytest.fixture
def fakes(load_module):
    """The REST tests' doubles: FakeRuntime's logits are [sum(image), batch size, 0, ...]."""
    return load_module(Path(__file__).resolve().parents[1] / "service" / "service_fakes.py")


async def test_grpc_and_rest_requests_share_a_batch_visible_in_the_metrics(fakes, tmp_path) -> None:
    runtime = fakes.FakeRuntime(num_classes=10)
    port = free_port()
    config = fakes.repository_config(tmp_path, grpc={"port": port})
    rest_body = {
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": [1, *DIGIT_SHAPE], "data": [2.0] * 64}
        ]
    }
    async with (
        fakes.in_process(config, fakes.fake_loader(runtime)) as (client, serving),
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        stub = GRPCInferenceServiceStub(channel)
        (batcher,) = serving.repository.get("digits").batchers
        runtime.gate.clear()
        first = asyncio.ensure_future(
            stub.ModelInfer(infer_request(images(0, shape=DIGIT_SHAPE), raw=True, model="digits"))
        )
        await asyncio.to_thread(runtime.wait_started)  # the runtime is busy with a batch of 1

        rest = asyncio.ensure_future(client.post("/v2/models/digits/infer", json=rest_body))
        typed = infer_request(images(1, shape=DIGIT_SHAPE), raw=False, model="digits")
        over_grpc = asyncio.ensure_future(stub.ModelInfer(typed))
        await wait_for(lambda: batcher.queued_images == 2, "a REST and a gRPC request queued")
        runtime.gate.set()

        await first
        rest_response, grpc_response = await rest, await over_grpc
        text = (await client.get("/metrics")).text

    assert runtime.batch_sizes == [1, 2]
    assert rest_response.status_code == 200
    rest_logits = rest_response.json()["outputs"][0]["data"]
    grpc_logits = output_array(grpc_response)[0]
    assert (rest_logits[0], rest_logits[1]) == (128.0, 2.0)  # sum of 64 twos; batch of 2
    assert (grpc_logits[0], grpc_logits[1]) == (64.0, 2.0)  # sum of 64 ones; the same batch
    assert fakes.metric(text, "blockserve_batch_size_count", model="digits") == 2
    assert fakes.metric(text, "blockserve_batch_size_sum", model="digits") == 3
    assert fakes.metric(text, "blockserve_batch_size_bucket", model="digits", le="1.0") == 1
    requests = "blockserve_requests_total"
    assert fakes.metric(text, requests, model="digits", protocol="rest", status="200") == 1
    assert fakes.metric(text, requests, model="digits", protocol="grpc", status="OK") == 2


async def test_the_lifespan_serves_grpc_and_shutdown_drains_calls_in_flight(
    fakes, tmp_path
) -> None:
    runtime = fakes.FakeRuntime(num_classes=10)
    port = free_port()
    app = create_app(
        fakes.repository_config(tmp_path, grpc={"port": port}), loader=fakes.fake_loader(runtime)
    )
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    await app.state.serving.repository.wait_loaded()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        assert (await stub.ServerReady(pb.ServerReadyRequest())).ready is True
        runtime.gate.clear()
        in_flight = asyncio.ensure_future(
            stub.ModelInfer(infer_request(images(3, shape=DIGIT_SHAPE), raw=True, model="digits"))
        )
        await asyncio.to_thread(runtime.wait_started)

        shutdown = asyncio.create_task(lifespan.__aexit__(None, None, None))
        await refused(stub)
        late = infer_request(images(4, shape=DIGIT_SHAPE), raw=True, model="digits")
        assert (await call_error(stub.ModelInfer, late)).code() is grpc.StatusCode.UNAVAILABLE
        assert not shutdown.done()
        runtime.gate.set()

        response = await in_flight
        await shutdown
    np.testing.assert_array_equal(output_array(response)[0][:2], [3.0 * 64, 1.0])
    assert runtime.batch_sizes == [1]


async def test_a_taken_grpc_port_fails_startup_before_any_model_loads(fakes, tmp_path) -> None:
    loaded: list[str] = []
    load = fakes.fake_loader(fakes.FakeRuntime(num_classes=10))

    def recording_loader(config, server, progress):
        loaded.append(config.name)
        return load(config, server, progress)

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = fakes.repository_config(tmp_path, grpc={"port": port})
        app = create_app(config, loader=recording_loader)
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            await app.router.lifespan_context(app).__aenter__()
        await asyncio.sleep(0.05)  # a loading task, had one started, would have run by now

    assert loaded == []


async def test_each_version_answers_by_its_number_over_rest_and_grpc(fakes, tmp_path) -> None:
    port = free_port()
    config = fakes.repository_config(tmp_path, grpc={"port": port})
    zeros = images(0, shape=DIGIT_SHAPE)
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, *DIGIT_SHAPE]}]}
    body["inputs"][0]["data"] = [0.0] * 64
    runtime = fakes.FakeRuntime(num_classes=10)
    async with (
        fakes.in_process(config, fakes.fake_loader(runtime)) as (client, serving),
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        both = VersionPolicy(all=True)
        await serving.manager.load(
            ModelConfig(name="digits", arch="resnet_digits", version_policy=both)
        )
        stub = GRPCInferenceServiceStub(channel)

        def request(version: str) -> pb.ModelInferRequest:
            return infer_request(zeros, raw=True, model="digits", model_version=version)

        rest = {
            version: (await client.post(f"/v2/models/digits{path}/infer", json=body)).json()
            for version, path in (("1", "/versions/1"), ("2", "/versions/2"), ("", ""))
        }
        over_grpc = {version: await stub.ModelInfer(request(version)) for version in ("1", "2", "")}
        metadata = await stub.ModelMetadata(pb.ModelMetadataRequest(name="digits", version="1"))
        missing = await call_error(stub.ModelInfer, request("3"))

    assert [rest[v]["model_version"] for v in ("1", "2", "")] == ["1", "2", "2"]
    assert [over_grpc[v].model_version for v in ("1", "2", "")] == ["1", "2", "2"]
    assert list(metadata.versions) == ["1", "2"]
    assert missing.code() is grpc.StatusCode.NOT_FOUND and "versions: 1, 2" in missing.details()

"""Where ModelInfer messages are parsed and decoded: large ones on decode threads with a bounded
backlog, so that the event loop (shared with REST) keeps answering; and what errors reveal."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from grpc_harness import (
    GatedRuntime,
    Serving,
    call_error,
    expected_logits,
    fake_loader,
    images,
    infer_request,
    output_array,
    wait_for,
)
from local_ports import free_port

from service.app import create_app
from service.config import (
    BatchingConfig,
    GrpcConfig,
    ModelConfig,
    RepositoryConfig,
    ServerConfig,
)
from service.grpc import servicer as servicer_module
from service.grpc.generated import grpc_service_pb2 as pb
from service.grpc.generated.grpc_service_pb2_grpc import GRPCInferenceServiceStub

LARGE_SHAPE = (3, 512, 512)  # 3 MiB of float32 per image
LARGE_IMAGES = 6  # 18 MiB of fp32_contents per request


class GatedDecoding:
    """Wraps the codec's `decode_inputs`: records the thread of each call, then holds it until
    `release` is set."""

    def __init__(self, decode: Callable) -> None:
        self._decode = decode
        self.release = threading.Event()
        self.threads: list[threading.Thread] = []

    def __call__(self, request):
        self.threads.append(threading.current_thread())
        if not self.release.wait(timeout=10):
            raise TimeoutError("the test never released the decoding")
        return self._decode(request)


@pytest.fixture
def gated_decoding(monkeypatch) -> GatedDecoding:
    gated = GatedDecoding(servicer_module.decode_inputs)
    monkeypatch.setattr(servicer_module, "decode_inputs", gated)
    yield gated
    gated.release.set()


def large_typed_request(value: float) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="large")
    shape = (LARGE_IMAGES, *LARGE_SHAPE)
    tensor = request.inputs.add(name="input", datatype="FP32", shape=shape)
    tensor.contents.fp32_contents.extend([value] * math.prod(shape))
    return request


def large_model_config(tmp_path: Path, grpc_port: int) -> RepositoryConfig:
    batching = BatchingConfig(max_batch_size=8, max_delay_ms=0, max_queue=32)
    return RepositoryConfig(
        server=ServerConfig(cache_dir=tmp_path, grpc=GrpcConfig(port=grpc_port)),
        models=[ModelConfig(name="large", arch="fake", batching=batching)],
    )


async def test_large_tensors_are_decoded_on_the_app_decode_threads_while_probes_answer(
    tmp_path: Path, gated_decoding: GatedDecoding
) -> None:
    port = free_port()
    runtime = GatedRuntime()
    app = create_app(large_model_config(tmp_path, port), loader=fake_loader(runtime, LARGE_SHAPE))
    loop_thread = threading.current_thread()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://blockserve") as rest,
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        await app.state.serving.repository.wait_loaded()
        stub = GRPCInferenceServiceStub(channel)
        values = (0.5, 1.0, 1.5, 2.0)
        calls = [
            asyncio.ensure_future(stub.ModelInfer(large_typed_request(value), timeout=60))
            for value in values
        ]
        # Both decode threads now hold a request: were decoding on the loop, nothing below
        # would be answered until it finished.
        await wait_for(lambda: len(gated_decoding.threads) == 2, "two decodes under way")

        rest_live = await rest.get("/v2/health/live")
        grpc_live = await stub.ServerLive(pb.ServerLiveRequest(), timeout=10)

        gated_decoding.release.set()
        responses = await asyncio.gather(*calls)

    assert rest_live.status_code == 200
    assert grpc_live.live is True
    assert len(gated_decoding.threads) == len(values)
    assert all(thread is not loop_thread for thread in gated_decoding.threads)
    assert all(thread.name.startswith("decode") for thread in gated_decoding.threads)
    for value, response in zip(values, responses, strict=True):
        expected = expected_logits(np.full((LARGE_IMAGES, *LARGE_SHAPE), value, np.float32))
        np.testing.assert_allclose(output_array(response), expected, rtol=1e-6)


async def test_small_tensors_are_decoded_on_the_event_loop(
    serving: Serving, gated_decoding: GatedDecoding
) -> None:
    gated_decoding.release.set()
    await serving.stub.ModelInfer(infer_request(images(1.0), raw=False))
    assert gated_decoding.threads == [threading.current_thread()]


async def test_beyond_the_decode_backlog_a_call_is_resource_exhausted(
    serving: Serving, gated_decoding: GatedDecoding, monkeypatch
) -> None:
    monkeypatch.setattr(servicer_module, "INLINE_MAX_BYTES", 0)  # every message is "large"
    # The decoder has one thread and room for two waiting messages.
    calls = [
        asyncio.ensure_future(serving.stub.ModelInfer(infer_request(images(v), raw=True)))
        for v in (1.0, 2.0, 3.0)
    ]
    await wait_for(lambda: serving.decoder.submitted == 3, "one decoding, two waiting")

    error = await call_error(serving.stub.ModelInfer, infer_request(images(4.0), raw=True))

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "waiting for a decode thread" in error.details()
    assert ("retry-after", "1") in tuple(error.trailing_metadata())
    gated_decoding.release.set()
    for value, call in zip((1.0, 2.0, 3.0), calls, strict=True):
        np.testing.assert_allclose(output_array(await call), expected_logits(images(value)))


async def test_a_message_that_is_not_a_model_infer_request_is_invalid_argument(
    serving: Serving,
) -> None:
    model_infer = serving.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    error = await call_error(model_infer, b"\x0a\x05ab")  # a 5-byte string holding 2
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid ModelInferRequest" in error.details()


async def test_an_unexpected_infer_error_is_internal_without_its_text_and_logged(
    serving: Serving, monkeypatch, caplog
) -> None:
    def broken_outputs(*args):
        raise KeyError("/srv/secret/path")

    monkeypatch.setattr(servicer_module, "model_outputs", broken_outputs)
    with caplog.at_level(logging.ERROR, logger="service.grpc.servicer"):
        error = await call_error(serving.stub.ModelInfer, infer_request(images(1.0), raw=True))

    assert error.code() is grpc.StatusCode.INTERNAL
    assert error.details() == "internal error (see the server log)"
    assert "/srv/secret/path" in caplog.text and "Traceback" in caplog.text
    labels = {"model": "tiny", "status": "INTERNAL", "protocol": "grpc"}
    assert serving.sample("blockserve_requests_total", **labels) == 1


async def test_an_unexpected_metadata_error_is_internal_without_its_text(
    serving: Serving, monkeypatch
) -> None:
    def broken_metadata(handle):
        raise KeyError("weights")

    monkeypatch.setattr(servicer_module, "model_metadata", broken_metadata)
    error = await call_error(serving.stub.ModelMetadata, pb.ModelMetadataRequest(name="tiny"))
    assert error.code() is grpc.StatusCode.INTERNAL
    assert error.details() == "internal error (see the server log)"

"""The V2 gRPC API over a real channel on 127.0.0.1, in front of the real repository/batcher."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from grpc_harness import (
    INPUT_SHAPE,
    NUM_CLASSES,
    PREPROCESS,
    Serving,
    call_error,
    expected_logits,
    images,
    infer_request,
    output_array,
    refused,
    wait_for,
)

from service.config import GrpcConfig, ServerConfig
from service.grpc import start_grpc_server, stop_grpc_server
from service.grpc.generated import grpc_service_pb2 as pb


async def occupy_runtime(serving: Serving) -> asyncio.Task:
    """Close the runtime gate and start a 1-image request that blocks inside `run`."""
    serving.runtime.gate.clear()
    busy = asyncio.ensure_future(serving.stub.ModelInfer(infer_request(images(0), raw=True)))
    await asyncio.to_thread(serving.runtime.wait_started)
    return busy


# --- health and metadata -------------------------------------------------------------------


async def test_server_live_is_true(serving: Serving) -> None:
    assert (await serving.stub.ServerLive(pb.ServerLiveRequest())).live is True


async def test_server_ready_follows_the_repository(serving: Serving) -> None:
    assert (await serving.stub.ServerReady(pb.ServerReadyRequest())).ready is True
    await serving.repository.close()
    assert (await serving.stub.ServerReady(pb.ServerReadyRequest())).ready is False


async def test_model_ready_is_true_for_a_loaded_model_and_false_for_a_failed_one(
    serving: Serving,
) -> None:
    assert (await serving.stub.ModelReady(pb.ModelReadyRequest(name="tiny"))).ready is True
    assert (await serving.stub.ModelReady(pb.ModelReadyRequest(name="broken"))).ready is False


async def test_model_ready_of_an_unknown_model_is_not_found(serving: Serving) -> None:
    error = await call_error(serving.stub.ModelReady, pb.ModelReadyRequest(name="nope"))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "'nope'" in error.details() and "'tiny'" in error.details()


async def test_server_metadata_names_the_server_and_its_version(serving: Serving) -> None:
    metadata = await serving.stub.ServerMetadata(pb.ServerMetadataRequest())
    assert metadata.name == "blockserve"
    assert metadata.version


async def test_model_metadata_describes_tensors_with_a_dynamic_batch_dimension(
    serving: Serving,
) -> None:
    metadata = await serving.stub.ModelMetadata(pb.ModelMetadataRequest(name="tiny"))
    assert (metadata.name, list(metadata.versions)) == ("tiny", ["1"])
    assert metadata.platform == "onnxruntime_onnx"
    (model_input,) = metadata.inputs
    assert (model_input.name, model_input.datatype) == ("input", "FP32")
    assert list(model_input.shape) == [-1, *INPUT_SHAPE]
    (model_output,) = metadata.outputs
    assert (model_output.name, model_output.datatype) == ("logits", "FP32")
    assert list(model_output.shape) == [-1, NUM_CLASSES]


async def test_model_metadata_of_an_unknown_version_is_not_found(serving: Serving) -> None:
    request = pb.ModelMetadataRequest(name="tiny", version="7")
    error = await call_error(serving.stub.ModelMetadata, request)
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "'7'" in error.details()


async def test_model_metadata_of_a_failed_model_is_unavailable_naming_its_state(
    serving: Serving,
) -> None:
    error = await call_error(serving.stub.ModelMetadata, pb.ModelMetadataRequest(name="broken"))
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert "model 'broken' is not ready (FAILED)" in error.details()


# --- ModelInfer: both input styles ---------------------------------------------------------


async def test_typed_fp32_contents_are_answered_with_typed_fp32_contents(
    serving: Serving,
) -> None:
    data = images(0.5, -1.0)
    response = await serving.stub.ModelInfer(infer_request(data, raw=False, id="req-7"))
    assert (response.model_name, response.model_version, response.id) == ("tiny", "1", "req-7")
    assert not response.raw_output_contents
    assert response.outputs[0].name == "logits"
    np.testing.assert_allclose(output_array(response), expected_logits(data))


async def test_raw_fp32_contents_are_answered_with_raw_output_contents(serving: Serving) -> None:
    data = images(2.0, 0.25, 3.0)
    response = await serving.stub.ModelInfer(infer_request(data, raw=True))
    assert len(response.raw_output_contents) == 1
    assert not response.outputs[0].HasField("contents")
    assert list(response.outputs[0].shape) == [3, NUM_CLASSES]
    np.testing.assert_allclose(output_array(response), expected_logits(data))


@pytest.mark.parametrize("raw", [False, True], ids=["typed", "raw"])
async def test_uint8_pixels_are_normalised_with_the_model_preprocess(
    serving: Serving, raw: bool
) -> None:
    pixels = np.arange(2 * 16, dtype=np.uint8).reshape(2, *INPUT_SHAPE) * 8
    response = await serving.stub.ModelInfer(infer_request(pixels, raw=raw, datatype="UINT8"))
    (mean,), (std,) = PREPROCESS.mean, PREPROCESS.std
    normalised = ((pixels.astype(np.float32) / 255 - mean) / std).astype(np.float32)
    np.testing.assert_allclose(output_array(response), expected_logits(normalised), rtol=1e-5)


async def test_raw_fp16_is_converted_to_the_float32_model_input(serving: Serving) -> None:
    data = images(0.5, 1.5).astype(np.float16)
    response = await serving.stub.ModelInfer(infer_request(data, raw=True, datatype="FP16"))
    np.testing.assert_allclose(output_array(response), expected_logits(data.astype(np.float32)))


async def test_requested_output_is_returned(serving: Serving) -> None:
    wanted = [pb.ModelInferRequest.InferRequestedOutputTensor(name="logits")]
    request = infer_request(images(1.0), raw=False, outputs=wanted)
    response = await serving.stub.ModelInfer(request)
    assert [output.name for output in response.outputs] == ["logits"]


async def test_an_unknown_requested_output_is_invalid(serving: Serving) -> None:
    wanted = [pb.ModelInferRequest.InferRequestedOutputTensor(name="probs")]
    error = await call_error(
        serving.stub.ModelInfer, infer_request(images(1.0), raw=False, outputs=wanted)
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "'probs'" in error.details()


async def test_an_unknown_requested_output_is_refused_before_inference(serving: Serving) -> None:
    wanted = [pb.ModelInferRequest.InferRequestedOutputTensor(name="probs")]
    error = await call_error(
        serving.stub.ModelInfer, infer_request(images(1.0), raw=True, outputs=wanted)
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "model 'tiny' has no output 'probs'; outputs: ['logits']"
    assert serving.runtime.batch_sizes == []  # no image reached the runtime


# --- ModelInfer: every error code ----------------------------------------------------------


def _bad_shape() -> pb.ModelInferRequest:
    return infer_request(np.zeros((1, 1, 4, 5), np.float32), raw=True)


def _bad_datatype() -> pb.ModelInferRequest:
    request = infer_request(images(1.0), raw=True)
    request.inputs[0].datatype = "FLOAT32"
    return request


def _unaccepted_datatype() -> pb.ModelInferRequest:
    return infer_request(np.zeros((1, *INPUT_SHAPE), np.int64), raw=False, datatype="INT64")


def _too_few_values() -> pb.ModelInferRequest:
    request = infer_request(images(1.0), raw=False)
    del request.inputs[0].contents.fp32_contents[-1]
    return request


def _wrong_contents_field() -> pb.ModelInferRequest:
    request = infer_request(images(1.0), raw=False)
    request.inputs[0].contents.int_contents.append(1)
    return request


def _short_raw_bytes() -> pb.ModelInferRequest:
    request = infer_request(images(1.0), raw=True)
    request.raw_input_contents[0] = request.raw_input_contents[0][:-4]
    return request


def _raw_and_typed() -> pb.ModelInferRequest:
    request = infer_request(images(1.0), raw=True)
    request.inputs[0].contents.fp32_contents.extend([0.0] * 16)
    return request


def _raw_entry_count() -> pb.ModelInferRequest:
    request = infer_request(images(1.0), raw=True)
    request.raw_input_contents.append(b"")
    return request


def _wrong_input_name() -> pb.ModelInferRequest:
    request = infer_request(images(1.0), raw=True)
    request.inputs[0].name = "image"
    return request


def _typed_fp16() -> pb.ModelInferRequest:
    request = infer_request(images(1.0), raw=True)
    request.inputs[0].datatype = "FP16"
    del request.raw_input_contents[:]
    request.inputs[0].contents.fp32_contents.extend([1.0] * 16)
    return request


def _uint8_out_of_range() -> pb.ModelInferRequest:
    request = infer_request(np.zeros((1, *INPUT_SHAPE), np.uint8), raw=False, datatype="UINT8")
    request.inputs[0].contents.uint_contents[0] = 300
    return request


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (_bad_shape, "[1, 1, 4, 5]"),
        (_bad_datatype, "'FLOAT32'"),
        (_unaccepted_datatype, "INT64"),
        (_too_few_values, "holds 15"),
        (_wrong_contents_field, "contents.int_contents"),
        (_short_raw_bytes, "got 60"),
        (_raw_and_typed, "typed contents"),
        (_raw_entry_count, "2 entries for 1 inputs"),
        (_wrong_input_name, "'image'"),
        (_typed_fp16, "send it in raw_input_contents"),
        (_uint8_out_of_range, "[0, 255]"),
    ],
    ids=lambda value: getattr(value, "__name__", "").strip("_") or None,
)
async def test_bad_tensors_are_invalid_argument_naming_the_problem(
    serving: Serving, build, named: str
) -> None:
    error = await call_error(serving.stub.ModelInfer, build())
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert named in error.details()
    assert serving.runtime.batch_sizes == []


async def test_an_unknown_model_is_not_found_listing_the_models(serving: Serving) -> None:
    error = await call_error(serving.stub.ModelInfer, infer_request(images(1), raw=True, model="x"))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "'x'" in error.details() and "'tiny'" in error.details()


async def test_a_model_that_is_not_ready_is_unavailable(serving: Serving) -> None:
    request = infer_request(images(1.0), raw=True, model="broken")
    error = await call_error(serving.stub.ModelInfer, request)
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert "not ready (FAILED)" in error.details()


async def test_a_runtime_failure_is_internal_naming_the_model_not_the_exception(
    serving: Serving,
) -> None:
    serving.runtime.failure = ValueError("tensor of NaNs")
    error = await call_error(serving.stub.ModelInfer, infer_request(images(1.0), raw=True))
    assert error.code() is grpc.StatusCode.INTERNAL
    assert error.details() == "inference failed in model 'tiny' (see the server log)"
    serving.runtime.failure = None
    assert (await serving.stub.ModelInfer(infer_request(images(1.0), raw=True))).outputs


async def test_a_full_queue_is_unavailable_with_retry_after(serving: Serving) -> None:
    busy = await occupy_runtime(serving)
    (batcher,) = serving.repository.get("tiny").batchers
    queued = asyncio.ensure_future(
        serving.stub.ModelInfer(infer_request(images(1, 2, 3, 4), raw=True))
    )
    await wait_for(lambda: batcher.queued_images == 4, "4 queued images (max_queue)")

    error = await call_error(serving.stub.ModelInfer, infer_request(images(5.0), raw=True))

    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert "max_queue 4" in error.details()
    assert ("retry-after", "1") in tuple(error.trailing_metadata())
    serving.runtime.gate.set()
    await busy
    np.testing.assert_allclose(output_array(await queued), expected_logits(images(1, 2, 3, 4)))


async def test_the_client_deadline_drops_the_request_before_compute(serving: Serving) -> None:
    busy = await occupy_runtime(serving)

    error = await call_error(
        serving.stub.ModelInfer, infer_request(images(7.0), raw=True), timeout=0.2
    )

    assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    labels = {"model": "tiny", "status": "DEADLINE_EXCEEDED", "protocol": "grpc"}
    await wait_for(lambda: serving.sample("blockserve_requests_total", **labels) == 1, "metric")
    serving.runtime.gate.set()
    await busy
    await serving.stub.ModelInfer(infer_request(images(8.0), raw=True))
    assert serving.runtime.batch_sizes == [1, 1]  # the expired image never reached the runtime


async def test_a_cancelled_call_is_dropped_before_compute_and_counted(serving: Serving) -> None:
    busy = await occupy_runtime(serving)
    call = serving.stub.ModelInfer(infer_request(images(7.0), raw=True))
    (batcher,) = serving.repository.get("tiny").batchers
    await wait_for(lambda: batcher.queued_images == 1, "the call to be queued")

    call.cancel()

    labels = {"model": "tiny", "status": "CANCELLED", "protocol": "grpc"}
    await wait_for(lambda: serving.sample("blockserve_requests_total", **labels) == 1, "metric")
    assert batcher.queued_images == 0
    serving.runtime.gate.set()
    await busy
    assert serving.runtime.batch_sizes == [1]


async def test_more_images_than_the_queue_holds_is_resource_exhausted(serving: Serving) -> None:
    error = await call_error(serving.stub.ModelInfer, infer_request(images(*range(5)), raw=True))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "5 images" in error.details() and "max_queue 4" in error.details()


async def test_a_message_over_the_size_limit_is_resource_exhausted(serving: Serving) -> None:
    large = np.zeros((300, *INPUT_SHAPE), np.float32)  # 76.8 kB raw > the 64 KiB limit
    error = await call_error(serving.stub.ModelInfer, infer_request(large, raw=True))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


# --- metrics and lifecycle -----------------------------------------------------------------


async def test_infer_requests_are_counted_with_the_grpc_protocol_label(serving: Serving) -> None:
    await serving.stub.ModelInfer(infer_request(images(1.0), raw=True))
    await call_error(serving.stub.ModelInfer, _bad_shape())

    def count(status: str) -> float:
        labels = {"model": "tiny", "status": status, "protocol": "grpc"}
        return serving.sample("blockserve_requests_total", **labels)

    assert (count("OK"), count("INVALID_ARGUMENT")) == (1, 1)
    assert serving.sample("blockserve_request_seconds_count", model="tiny", protocol="grpc") == 2


async def test_stopping_refuses_new_calls_and_finishes_those_in_flight(serving: Serving) -> None:
    busy = await occupy_runtime(serving)
    stopping = asyncio.create_task(stop_grpc_server(serving.server, 10.0))
    await refused(serving.stub)

    error = await call_error(serving.stub.ModelInfer, infer_request(images(1.0), raw=True))
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert not stopping.done()

    serving.runtime.gate.set()
    np.testing.assert_allclose(output_array(await busy), expected_logits(images(0)))
    await stopping


@pytest.mark.parametrize("config", [GrpcConfig(port=0), GrpcConfig(enabled=False)])
async def test_grpc_is_disabled_by_port_zero_or_enabled_false(repository, decoder, config) -> None:
    models, _ = repository
    server_config = ServerConfig(grpc=config)
    assert await start_grpc_server(models, server_config, "127.0.0.1", decoder) is None

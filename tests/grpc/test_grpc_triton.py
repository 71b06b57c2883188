"""Triton's gRPC additions over a real channel: ModelConfig, ModelStatistics, ModelStreamInfer,
classification, Triton's parameter types, response ids and the RPCs answered UNIMPLEMENTED."""

from __future__ import annotations

import struct

import grpc
import numpy as np
import pytest
from grpc_harness import (
    INPUT_SHAPE,
    NUM_CLASSES,
    Serving,
    call_error,
    expected_logits,
    images,
    infer_request,
    output_array,
)

from service.grpc.generated import grpc_service_pb2 as pb
from service.grpc.generated import model_config_pb2


def classification_request(class_count: pb.InferParameter, *, raw: bool) -> pb.ModelInferRequest:
    request = infer_request(images(0), raw=raw)
    request.outputs.add(name="logits").parameters["classification"].CopyFrom(class_count)
    return request


def raw_bytes_elements(raw: bytes) -> list[bytes]:
    """The elements of a BYTES tensor in raw contents: each a 4-byte length, then the bytes."""
    elements, offset = [], 0
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        elements.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return elements


# --- ModelConfig ---------------------------------------------------------------------------


async def test_model_config_describes_the_served_model(serving: Serving) -> None:
    config = (await serving.stub.ModelConfig(pb.ModelConfigRequest(name="tiny"))).config
    assert (config.name, config.platform, config.backend) == (
        "tiny",
        "onnxruntime_onnx",
        "onnxruntime",
    )
    assert config.max_batch_size == 8
    (model_input,) = config.input
    assert model_input.name == "input"
    assert model_input.data_type == model_config_pb2.TYPE_FP32
    assert list(model_input.dims) == list(INPUT_SHAPE)  # without the batch dimension
    (model_output,) = config.output
    assert (model_output.name, list(model_output.dims)) == ("logits", [NUM_CLASSES])
    assert config.HasField("dynamic_batching")
    assert config.dynamic_batching.default_queue_policy.max_queue_size == 4
    (group,) = config.instance_group
    assert (group.kind, group.count) == (model_config_pb2.ModelInstanceGroup.KIND_CPU, 1)


async def test_model_config_of_another_version_or_model_is_not_found(serving: Serving) -> None:
    for request in (
        pb.ModelConfigRequest(name="tiny", version="7"),
        pb.ModelConfigRequest(name="nope"),
    ):
        error = await call_error(serving.stub.ModelConfig, request)
        assert error.code() is grpc.StatusCode.NOT_FOUND, request


async def test_model_config_of_a_model_that_failed_to_load_is_unavailable(
    serving: Serving,
) -> None:
    error = await call_error(serving.stub.ModelConfig, pb.ModelConfigRequest(name="broken"))
    assert error.code() is grpc.StatusCode.UNAVAILABLE


# --- ModelStatistics -----------------------------------------------------------------------


async def test_statistics_count_requests_inferences_and_batches(serving: Serving) -> None:
    for value in (1, 2, 3):
        await serving.stub.ModelInfer(infer_request(images(value), raw=True))
    await serving.stub.ModelInfer(infer_request(images(4, 5), raw=True))
    await call_error(serving.stub.ModelInfer, infer_request(images(1)[..., :3], raw=True))

    response = await serving.stub.ModelStatistics(pb.ModelStatisticsRequest(name="tiny"))
    (stats,) = response.model_stats
    assert (stats.name, stats.version) == ("tiny", "1")
    assert stats.inference_stats.success.count == 4
    assert stats.inference_stats.fail.count == 1
    assert stats.inference_count == 5  # images
    assert stats.execution_count == 4  # batches
    assert stats.inference_stats.compute_infer.count == 4
    assert stats.inference_stats.success.ns > 0
    assert {entry.batch_size: entry.compute_infer.count for entry in stats.batch_stats} == {
        1: 3,
        2: 1,
    }
    assert stats.last_inference > 0


async def test_statistics_without_a_name_cover_every_model(serving: Serving) -> None:
    response = await serving.stub.ModelStatistics(pb.ModelStatisticsRequest())
    assert [stats.name for stats in response.model_stats] == ["tiny", "broken"]


async def test_statistics_of_another_version_or_model_are_not_found(serving: Serving) -> None:
    for request in (
        pb.ModelStatisticsRequest(name="tiny", version="2"),
        pb.ModelStatisticsRequest(name="nope"),
    ):
        error = await call_error(serving.stub.ModelStatistics, request)
        assert error.code() is grpc.StatusCode.NOT_FOUND, request


# --- ModelStreamInfer ----------------------------------------------------------------------


async def test_a_stream_answers_each_request_and_reports_a_bad_one_in_its_response(
    serving: Serving,
) -> None:
    good = infer_request(images(1), raw=True, id="good")
    bad = infer_request(images(1), raw=True, id="bad", model="nope")
    later = infer_request(images(2, 3), raw=False, id="later")

    responses = [answer async for answer in serving.stub.ModelStreamInfer(iter([good, bad, later]))]

    by_id = {response.infer_response.id: response for response in responses}
    assert sorted(by_id) == ["bad", "good", "later"]
    assert "'nope'" in by_id["bad"].error_message
    assert not by_id["bad"].infer_response.outputs
    for request_id, batch in (("good", images(1)), ("later", images(2, 3))):
        assert by_id[request_id].error_message == ""
        np.testing.assert_allclose(
            output_array(by_id[request_id].infer_response), expected_logits(batch)
        )


async def test_a_stream_counts_each_request_in_the_metrics(serving: Serving) -> None:
    requests = [infer_request(images(1), raw=True), infer_request(images(1), raw=True, model="x")]
    async for _ in serving.stub.ModelStreamInfer(iter(requests)):
        pass
    ok = {"model": "tiny", "status": "OK", "protocol": "grpc"}
    not_found = {"model": "", "version": "", "status": "NOT_FOUND", "protocol": "grpc"}
    assert serving.sample("blockserve_requests_total", **ok) == 1
    assert serving.sample("blockserve_requests_total", **not_found) == 1


async def test_an_empty_stream_ends_without_responses(serving: Serving) -> None:
    assert [answer async for answer in serving.stub.ModelStreamInfer(iter([]))] == []


# --- classification and parameters ---------------------------------------------------------


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
async def test_classification_answers_the_top_classes_as_bytes(serving: Serving, raw: bool) -> None:
    request = classification_request(pb.InferParameter(int64_param=2), raw=raw)
    response = await serving.stub.ModelInfer(request)
    (output,) = response.outputs
    assert (output.name, output.datatype, list(output.shape)) == ("logits", "BYTES", [1, 2])
    if raw:
        elements = raw_bytes_elements(response.raw_output_contents[0])
    else:
        elements = list(output.contents.bytes_contents)
    assert elements == [b"2.000000:2:2", b"1.000000:1:1"]  # logits 0, 1, 2; labels "0".."2"


async def test_classification_count_may_come_as_uint64(serving: Serving) -> None:
    request = classification_request(pb.InferParameter(uint64_param=1), raw=True)
    response = await serving.stub.ModelInfer(request)
    assert raw_bytes_elements(response.raw_output_contents[0]) == [b"2.000000:2:2"]


@pytest.mark.parametrize(
    "class_count",
    [pb.InferParameter(double_param=2.0), pb.InferParameter(string_param="2")],
    ids=["double", "string"],
)
async def test_classification_count_that_is_no_integer_is_refused(
    serving: Serving, class_count: pb.InferParameter
) -> None:
    request = classification_request(class_count, raw=True)
    error = await call_error(serving.stub.ModelInfer, request)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "'classification'" in error.details() and "integer" in error.details()


async def test_request_parameters_of_every_triton_type_are_accepted(serving: Serving) -> None:
    request = infer_request(images(1), raw=True)
    request.parameters["priority"].uint64_param = 2**64 - 1
    request.parameters["threshold"].double_param = 0.25
    request.parameters["tag"].string_param = "x"
    response = await serving.stub.ModelInfer(request)
    np.testing.assert_allclose(output_array(response), expected_logits(images(1)))


async def test_a_parameter_without_a_value_is_refused(serving: Serving) -> None:
    request = infer_request(images(1), raw=True)
    request.parameters["empty"].CopyFrom(pb.InferParameter())
    error = await call_error(serving.stub.ModelInfer, request)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "'empty' has no value" in error.details()


# --- response id ---------------------------------------------------------------------------


async def test_the_response_id_is_the_request_id_else_a_generated_one(serving: Serving) -> None:
    named = await serving.stub.ModelInfer(infer_request(images(1), raw=True, id="req-7"))
    assert named.id == "req-7"
    first = await serving.stub.ModelInfer(infer_request(images(1), raw=True))
    second = await serving.stub.ModelInfer(infer_request(images(1), raw=True))
    assert first.id and second.id and first.id != second.id


# --- RPCs not served -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rpc", "request_message", "reason"),
    [
        ("SystemSharedMemoryStatus", pb.SystemSharedMemoryStatusRequest(), "shared memory"),
        ("CudaSharedMemoryRegister", pb.CudaSharedMemoryRegisterRequest(), "shared memory"),
        ("TraceSetting", pb.TraceSettingRequest(), "trace"),
        ("LogSettings", pb.LogSettingsRequest(), "log"),
    ],
)
async def test_rpcs_not_served_answer_unimplemented_saying_why(
    serving: Serving, rpc: str, request_message, reason: str
) -> None:
    error = await call_error(getattr(serving.stub, rpc), request_message)
    assert error.code() is grpc.StatusCode.UNIMPLEMENTED
    assert error.details().startswith(f"{rpc}: ") and reason in error.details()

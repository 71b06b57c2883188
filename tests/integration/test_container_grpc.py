"""Open Inference Protocol V2 over gRPC against the container (port 8001 inside it)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import pytest
from container_metrics import counter

from models.digits import load_digits_split, to_model_input
from service.grpc.generated import grpc_service_pb2 as pb
from service.grpc.generated.grpc_service_pb2_grpc import GRPCInferenceServiceStub

RPC_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def stub(grpc_target: str) -> Iterator[GRPCInferenceServiceStub]:
    with grpc.insecure_channel(grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)
        yield GRPCInferenceServiceStub(channel)


def digits_request(images: np.ndarray, input_name: str) -> pb.ModelInferRequest:
    batch = to_model_input(images).numpy()  # (N, 1, 8, 8)
    request = pb.ModelInferRequest(model_name="digits")
    request.inputs.add(name=input_name, datatype="FP32", shape=list(batch.shape))
    request.raw_input_contents.append(batch.astype("<f4").tobytes())
    return request


def test_grpc_server_is_live_and_ready(stub: GRPCInferenceServiceStub) -> None:
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=RPC_TIMEOUT_S).live
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=RPC_TIMEOUT_S).ready
    ready = stub.ModelReady(pb.ModelReadyRequest(name="digits"), timeout=RPC_TIMEOUT_S)
    assert ready.ready


def test_grpc_infer_classifies_the_held_out_digits(
    stub: GRPCInferenceServiceStub, client: httpx.Client
) -> None:
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="digits"), timeout=RPC_TIMEOUT_S)
    assert list(metadata.inputs[0].shape) == [-1, 1, 8, 8]
    split = load_digits_split()
    before = client.get("/metrics").text

    request = digits_request(split.test_images, metadata.inputs[0].name)
    response = stub.ModelInfer(request, timeout=RPC_TIMEOUT_S)

    assert list(response.outputs[0].shape) == [len(split.test_labels), 10]
    logits = np.frombuffer(response.raw_output_contents[0], "<f4").reshape(-1, 10)
    assert (logits.argmax(axis=1) == split.test_labels).mean() >= 0.95
    grpc_ok = {"model": "digits", "protocol": "grpc", "status": "OK"}
    after = client.get("/metrics").text
    total = "blockserve_requests_total"
    assert counter(after, total, **grpc_ok) == counter(before, total, **grpc_ok) + 1


def test_grpc_infer_on_an_unknown_model_is_not_found(stub: GRPCInferenceServiceStub) -> None:
    request = pb.ModelInferRequest(model_name="nope")
    with pytest.raises(grpc.RpcError) as raised:
        stub.ModelInfer(request, timeout=RPC_TIMEOUT_S)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND

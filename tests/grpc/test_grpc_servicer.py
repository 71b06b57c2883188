"""The servicer without a transport: what it hands the batcher, with a stand-in context."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from service.grpc import InferenceServicer
from service.grpc.generated import grpc_service_pb2 as pb


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code, self.details = code, details


class StandInContext:
    """The two `grpc.aio.ServicerContext` methods the servicer uses."""

    def __init__(self, time_remaining: float | None) -> None:
        self._time_remaining = time_remaining

    def time_remaining(self) -> float | None:
        return self._time_remaining

    async def abort(self, code: grpc.StatusCode, details: str, trailing_metadata=()) -> None:
        raise Aborted(code, details)


def one_image_request() -> bytes:
    """A ModelInferRequest's wire bytes: the servicer's ModelInfer takes and returns bytes."""
    request = pb.ModelInferRequest(model_name="tiny")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 1, 4, 4])
    request.raw_input_contents.append(np.ones(16, "<f4").tobytes())
    return request.SerializeToString()


async def test_the_grpc_deadline_becomes_the_batcher_deadline(repository, decoder) -> None:
    models, runtime = repository
    servicer = InferenceServicer(models, decoder)
    runtime.gate.clear()
    busy = asyncio.create_task(servicer.ModelInfer(one_image_request(), StandInContext(None)))
    await asyncio.to_thread(runtime.wait_started)

    with pytest.raises(Aborted) as caught:
        await servicer.ModelInfer(one_image_request(), StandInContext(time_remaining=0.05))

    assert caught.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert "deadline exceeded" in caught.value.details
    runtime.gate.set()
    assert list(pb.ModelInferResponse.FromString(await busy).outputs[0].shape) == [1, 3]
    assert runtime.batch_sizes == [1]


async def test_without_a_grpc_deadline_the_request_waits_for_the_runtime(
    repository, decoder
) -> None:
    models, runtime = repository
    servicer = InferenceServicer(models, decoder)
    runtime.gate.clear()
    first = asyncio.create_task(servicer.ModelInfer(one_image_request(), StandInContext(None)))
    await asyncio.to_thread(runtime.wait_started)
    second = asyncio.create_task(servicer.ModelInfer(one_image_request(), StandInContext(None)))
    await asyncio.sleep(0.1)
    assert not second.done()

    runtime.gate.set()
    responses = [pb.ModelInferResponse.FromString(r) for r in await asyncio.gather(first, second)]

    assert [list(response.outputs[0].shape) for response in responses] == [[1, 3], [1, 3]]
    assert runtime.batch_sizes == [1, 1]

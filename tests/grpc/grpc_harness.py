"""Test doubles for the gRPC tests: a gated fake runtime behind the real repository/batcher."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import grpc
import numpy as np
import pytest

from service.config import BatchingConfig, ModelConfig, RepositoryConfig, ServerConfig
from service.grpc.generated import grpc_service_pb2 as pb
from service.grpc.generated.grpc_service_pb2_grpc import GRPCInferenceServiceStub
from service.imaging import Preprocess
from service.metrics import Metrics
from service.offload import Offloader
from service.repository import LoadedModel, ModelRepository

INPUT_SHAPE = (1, 4, 4)  # (C, H, W)
NUM_CLASSES = 3
PREPROCESS = Preprocess("gray", 4, (4, 4), (0.5,), (0.25,))
BROKEN_ARCH = "broken"


class GatedRuntime:
    """Logits row i = sum(image_i) + [0, 1, 2]. `gate` cleared: every `run` blocks until set."""

    def __init__(self) -> None:
        self.failure: Exception | None = None  # raised by every `run` when set
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Semaphore(0)
        self.batch_sizes: list[int] = []

    def run(self, batch: np.ndarray) -> np.ndarray:  # (B, C, H, W) -> (B, NUM_CLASSES)
        self.batch_sizes.append(len(batch))
        self.started.release()
        if not self.gate.wait(timeout=30):
            raise TimeoutError("the test never opened the runtime gate")
        if self.failure is not None:
            raise self.failure
        return expected_logits(batch)

    def wait_started(self, timeout: float = 10) -> None:
        if not self.started.acquire(timeout=timeout):
            raise TimeoutError("the runtime was never called")


def expected_logits(images: np.ndarray) -> np.ndarray:
    """What GatedRuntime answers for (N, C, H, W) images: (N, NUM_CLASSES)."""
    sums = images.reshape(len(images), -1).sum(axis=1, dtype=np.float32)
    return sums[:, None] + np.arange(NUM_CLASSES, dtype=np.float32)


def fake_loader(runtime: GatedRuntime, input_shape: tuple[int, ...] = INPUT_SHAPE):
    def load(config: ModelConfig, server, progress) -> LoadedModel:
        if config.arch == BROKEN_ARCH:
            raise RuntimeError("weights file is corrupt")
        return LoadedModel(
            runtimes=[runtime],
            manifest={"name": config.name, "weights": {"trained": False}},
            preprocess=PREPROCESS,
            labels=[str(index) for index in range(NUM_CLASSES)],
            input_name="input",
            output_name="logits",
            input_shape=input_shape,
            num_classes=NUM_CLASSES,
            device="cpu",
        )

    return load


def repository_config() -> RepositoryConfig:
    """`tiny` (READY, the default; a queue of 4 images) and `broken` (FAILED while loading).
    The server is ready when the default model is."""
    batching = BatchingConfig(max_batch_size=8, max_delay_ms=0, max_queue=4)
    return RepositoryConfig(
        server=ServerConfig(strict_readiness=False),
        models=[
            ModelConfig(name="tiny", arch="fake", batching=batching),
            ModelConfig(name="broken", arch=BROKEN_ARCH),
        ],
    )


@dataclass
class Serving:
    repository: ModelRepository
    metrics: Metrics
    runtime: GatedRuntime
    server: grpc.aio.Server
    channel: grpc.aio.Channel
    stub: GRPCInferenceServiceStub
    decoder: Offloader

    def sample(self, name: str, **labels: str) -> float:
        """A sample's value; a model's series are those of its version 1 unless told."""
        if labels.get("model"):
            labels.setdefault("version", "1")
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


TYPED_FIELDS = {"FP32": "fp32_contents", "UINT8": "uint_contents", "INT64": "int64_contents"}


def images(*values: float, shape: tuple[int, ...] = INPUT_SHAPE) -> np.ndarray:
    """One (C, H, W) image per value, every pixel equal to it: (N, C, H, W) float32."""
    return np.stack([np.full(shape, value, np.float32) for value in values])


def infer_request(
    data: np.ndarray, *, raw: bool, datatype: str = "FP32", model: str = "tiny", **fields
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, **fields)
    tensor = request.inputs.add(name="input", datatype=datatype, shape=data.shape)
    if raw:
        request.raw_input_contents.append(data.astype(data.dtype.newbyteorder("<")).tobytes())
    else:
        getattr(tensor.contents, TYPED_FIELDS[datatype]).extend(data.ravel().tolist())
    return request


def output_array(response: pb.ModelInferResponse, index: int = 0) -> np.ndarray:
    tensor = response.outputs[index]
    assert tensor.datatype == "FP32"
    if response.raw_output_contents:
        flat = np.frombuffer(response.raw_output_contents[index], "<f4")
    else:
        flat = np.asarray(tensor.contents.fp32_contents, np.float32)
    return flat.reshape(tuple(tensor.shape))


async def call_error(rpc, request, **kwargs) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rpc(request, **kwargs)
    return caught.value


async def wait_for(condition, what: str, timeout: float = 10.0) -> None:
    """Poll `condition()` on the event loop until it holds (bounded)."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def refused(stub: GRPCInferenceServiceStub, timeout: float = 10.0) -> None:
    """Wait until the server refuses new calls (it is stopping): ServerLive turns UNAVAILABLE.

    A call racing the start of the shutdown may end CANCELLED instead; keep polling then."""
    for _ in range(int(timeout / 0.01)):
        try:
            await stub.ServerLive(pb.ServerLiveRequest(), timeout=1.0)
        except grpc.aio.AioRpcError as error:
            assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), error
            if error.code() is grpc.StatusCode.UNAVAILABLE:
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the server kept accepting calls")

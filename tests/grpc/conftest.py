"""A real repository and batcher behind a real gRPC server on 127.0.0.1, with a fake runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_harness import GatedRuntime, Serving, fake_loader, free_port, repository_config

from service.config import GrpcConfig
from service.grpc import start_grpc_server, stop_grpc_server
from service.grpc.generated.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from service.metrics import Metrics
from service.repository import ModelRepository


@pytest.fixture
async def repository() -> AsyncIterator[tuple[ModelRepository, GatedRuntime]]:
    runtime = GatedRuntime()
    repository = ModelRepository(repository_config(), Metrics(), loader=fake_loader(runtime))
    repository.start()
    await repository.wait_loaded()
    yield repository, runtime
    runtime.gate.set()
    await repository.close()


@pytest.fixture
async def serving(repository) -> AsyncIterator[Serving]:
    models, runtime = repository
    config = GrpcConfig(port=free_port(), max_message_bytes=64 * 1024)
    server = await start_grpc_server(models, config, "127.0.0.1")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{config.port}")
    yield Serving(
        models, models.metrics, runtime, server, channel, GRPCInferenceServiceStub(channel)
    )
    runtime.gate.set()
    await channel.close()
    await stop_grpc_server(server, 5.0)

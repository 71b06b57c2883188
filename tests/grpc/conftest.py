"""A real repository and batcher behind a real gRPC server on 127.0.0.1, with a fake runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_harness import GatedRuntime, Serving, fake_loader, repository_config
from local_ports import free_port

from service.config import GrpcConfig, ServerConfig
from service.grpc import start_grpc_server, stop_grpc_server
from service.grpc.generated.grpc_service_pb2_grpc import GRPCInferenceServiceStub
from service.metrics import Metrics
from service.offload import Offloader
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
def decoder() -> Iterator[Offloader]:
    """One decode thread, and up to two messages waiting for it."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="test-decode")
    yield Offloader(pool, threads=1, max_backlog=2, retry_after_s=1)
    pool.shutdown(wait=True)


@pytest.fixture
async def serving(repository, decoder) -> AsyncIterator[Serving]:
    models, runtime = repository
    config = ServerConfig(grpc=GrpcConfig(port=free_port(), max_message_bytes=64 * 1024))
    server = await start_grpc_server(models, config, "127.0.0.1", decoder)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{config.grpc.port}")
    yield Serving(
        models,
        models.metrics,
        runtime,
        server,
        channel,
        GRPCInferenceServiceStub(channel),
        decoder,
    )
    runtime.gate.set()
    await channel.close()
    await stop_grpc_server(server, 5.0)

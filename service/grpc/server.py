"""The `grpc.aio` server: runs on the event loop of the FastAPI app, beside uvicorn.

Started and stopped by the app lifespan. It serves the same `ModelRepository`, so gRPC and
REST requests for a model queue in the same batchers and can share a batch.
"""

from __future__ import annotations

import logging

import grpc

from service.config import GrpcConfig
from service.grpc.generated.grpc_predict_v2_pb2_grpc import (
    add_GRPCInferenceServiceServicer_to_server,
)
from service.grpc.servicer import InferenceServicer
from service.repository import ModelRepository

log = logging.getLogger(__name__)

# A grace long enough to finish every accepted call; stop(None) would abort them at once.
UNBOUNDED_GRACE_S = 24 * 3600.0


def server_options(config: GrpcConfig) -> list[tuple[str, int]]:
    """Channel arguments of the server: message limits, and no silent port sharing."""
    return [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 0),  # a second server on a taken port fails instead of sharing
    ]


def grpc_enabled(config: GrpcConfig) -> bool:
    """gRPC runs unless disabled in the config or given port 0."""
    return config.enabled and config.port != 0


async def start_grpc_server(
    repository: ModelRepository, config: GrpcConfig, host: str
) -> grpc.aio.Server | None:
    """Bind `host:config.port` and start serving; None when gRPC is disabled.

    Must run on the event loop that serves the app: the servicer awaits the batchers there.
    """
    if not grpc_enabled(config):
        log.info("gRPC server disabled")
        return None
    server = grpc.aio.server(options=server_options(config))
    add_GRPCInferenceServiceServicer_to_server(InferenceServicer(repository), server)
    address = _address(host, config.port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"gRPC server cannot listen on {address}: {error}") from None
    if not bound:
        raise OSError(f"gRPC server cannot listen on {address} (address in use?)")
    await server.start()
    log.info("gRPC server listening on %s", address)
    return server


async def stop_grpc_server(server: grpc.aio.Server | None, grace_s: float | None) -> None:
    """Refuse new calls at once, let in-flight calls finish (for at most `grace_s`; None:
    for as long as they take), then close."""
    if server is None:
        return
    await server.stop(UNBOUNDED_GRACE_S if grace_s is None else grace_s)
    log.info("gRPC server stopped")


def _address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):  # a bare IPv6 address
        host = f"[{host}]"
    return f"{host}:{port}"

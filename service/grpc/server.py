"""The `grpc.aio` server: runs on the event loop of the FastAPI app, beside uvicorn.

Started and stopped by the app lifespan. It serves the same `ModelRepository`, so gRPC and
REST requests for a model queue in the same batchers and can share a batch. Large ModelInfer
messages are parsed, decoded and encoded on the app's decode threads (`service.offload`);
with `server.tls` set, the port speaks TLS only.
"""

from __future__ import annotations

import logging

import grpc

from service.config import GrpcConfig, ServerConfig, TlsConfig
from service.grpc.generated import grpc_predict_v2_pb2 as pb
from service.grpc.servicer import InferenceServicer
from service.offload import Offloader
from service.repository import ModelRepository

log = logging.getLogger(__name__)

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
# Registered without (de)serializers: the servicer parses and encodes these messages itself.
WIRE_METHODS = frozenset({"ModelInfer"})

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
    repository: ModelRepository, config: ServerConfig, host: str, decoder: Offloader
) -> grpc.aio.Server | None:
    """Bind `host:config.grpc.port` (TLS when `config.tls` is set) and start serving; None when
    gRPC is disabled. Large messages are parsed, decoded and encoded by `decoder` (shared with
    REST, so its backlog bound holds across protocols).

    Must run on the event loop that serves the app: the servicer awaits the batchers there.
    """
    if not grpc_enabled(config.grpc):
        log.info("gRPC server disabled")
        return None
    server = grpc.aio.server(options=server_options(config.grpc))
    handlers = method_handlers(InferenceServicer(repository, decoder))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
    address = _address(host, config.grpc.port)
    try:
        if config.tls is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, server_credentials(config.tls))
    except RuntimeError as error:  # grpcio reports unusable TLS files as a failed bind
        hint = "" if config.tls is None else " (or server.tls holds no valid certificate/key)"
        raise OSError(f"gRPC server cannot listen on {address}{hint}: {error}") from None
    if not bound:
        raise OSError(f"gRPC server cannot listen on {address} (address in use?)")
    await server.start()
    log.info("gRPC server listening on %s%s", address, "" if config.tls is None else " (TLS)")
    return server


def method_handlers(servicer: InferenceServicer) -> dict[str, grpc.RpcMethodHandler]:
    """The service's handlers by method name; those of `WIRE_METHODS` take and return bytes."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in SERVICE.methods:
        behaviour = getattr(servicer, method.name)
        if method.name in WIRE_METHODS:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(behaviour)
            continue
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=getattr(pb, method.input_type.name).FromString,
            response_serializer=getattr(pb, method.output_type.name).SerializeToString,
        )
    return handlers


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """The certificate chain and key of `tls`, read now so that a missing file fails startup."""
    try:
        key, chain = tls.key_file.read_bytes(), tls.cert_file.read_bytes()
    except OSError as error:
        raise OSError(f"gRPC TLS: cannot read {error.filename}: {error.strerror}") from None
    return grpc.ssl_server_credentials([(key, chain)])


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

"""The `grpc.aio` server: runs on the event loop of the FastAPI app, beside uvicorn.

It serves Triton's `inference.GRPCInferenceService`, the standard `grpc.health.v1.Health`
and server reflection (`grpc.reflection.v1alpha.ServerReflection`).

Started and stopped by the app lifespan. It serves the same `ModelRepository`, so gRPC and
REST requests for a model queue in the same batchers and can share a batch. Large ModelInfer
messages are parsed, decoded and encoded on the app's decode threads (`service.offload`);
with `server.tls` set, the port speaks TLS only.
"""

from __future__ import annotations

import logging

import grpc

from service.auth import Authenticator
from service.config import GrpcConfig, ServerConfig, TlsConfig
from service.grpc.auth import guarded
from service.grpc.generated import grpc_service_pb2 as pb
from service.grpc.generated.health_pb2 import DESCRIPTOR as HEALTH_PROTO
from service.grpc.generated.health_pb2_grpc import add_HealthServicer_to_server
from service.grpc.generated.reflection_pb2_grpc import add_ServerReflectionServicer_to_server
from service.grpc.health import HealthService
from service.grpc.reflection import SERVICE_NAME as REFLECTION_SERVICE
from service.grpc.reflection import ReflectionService
from service.grpc.servicer import InferenceServicer
from service.management import ModelManager
from service.offload import Offloader
from service.repository import ModelRepository

log = logging.getLogger(__name__)

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
# Registered without (de)serializers: the servicer parses and encodes these messages itself.
WIRE_METHODS = frozenset({"ModelInfer", "ModelStreamInfer"})
HEALTH_SERVICE = HEALTH_PROTO.services_by_name["Health"].full_name

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
    repository: ModelRepository,
    config: ServerConfig,
    host: str,
    decoder: Offloader,
    *,
    manager: ModelManager | None = None,
    auth: Authenticator | None = None,
) -> grpc.aio.Server | None:
    """Bind `host:config.grpc.port` (TLS when `config.tls` is set) and start serving; None when
    gRPC is disabled. Large messages are parsed, decoded and encoded by `decoder` (shared with
    REST, so its backlog bound holds across protocols). The repository RPCs change the
    repository through `manager` (None: one that keeps no record). Calls need the tokens
    `auth` asks for (None: none).

    Must run on the event loop that serves the app: the servicer awaits the batchers there.
    """
    if not grpc_enabled(config.grpc):
        log.info("gRPC server disabled")
        return None
    server = grpc.aio.server(options=server_options(config.grpc))
    handlers = method_handlers(InferenceServicer(repository, decoder, manager), auth)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
    add_HealthServicer_to_server(HealthService(repository), server)
    services = (SERVICE.full_name, HEALTH_SERVICE, REFLECTION_SERVICE)
    add_ServerReflectionServicer_to_server(ReflectionService(services), server)
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


def method_handlers(
    servicer: InferenceServicer, auth: Authenticator | None = None
) -> dict[str, grpc.RpcMethodHandler]:
    """The service's handlers by method name; those of `WIRE_METHODS` take and return bytes.
    With `auth`, each checks the caller's token first when its kind of access needs one."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in SERVICE.methods:
        streaming = method.client_streaming and method.server_streaming
        behaviour = getattr(servicer, method.name)
        if auth is not None:
            behaviour = guarded(behaviour, method.name, auth, streaming=streaming)
        make = (
            grpc.stream_stream_rpc_method_handler
            if streaming
            else grpc.unary_unary_rpc_method_handler
        )
        if method.name in WIRE_METHODS:
            handlers[method.name] = make(behaviour)
            continue
        handlers[method.name] = make(
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

"""With `server.tls` set, the gRPC port speaks TLS only."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from local_ports import free_port

from service.config import GrpcConfig, ServerConfig, TlsConfig
from service.grpc import start_grpc_server, stop_grpc_server
from service.grpc.generated import grpc_service_pb2 as pb
from service.grpc.generated.grpc_service_pb2_grpc import GRPCInferenceServiceStub

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def self_signed_certificate(directory: Path) -> TlsConfig:
    """A certificate for localhost and 127.0.0.1, and its key, as PEM files."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return TlsConfig(cert_file=cert, key_file=key)


@pytest.fixture
async def tls_port(repository, decoder, tmp_path: Path):
    models, _ = repository
    tls = self_signed_certificate(tmp_path)
    config = ServerConfig(grpc=GrpcConfig(port=free_port()), tls=tls)
    server = await start_grpc_server(models, config, "127.0.0.1", decoder)
    yield config.grpc.port, tls.cert_file.read_bytes()
    await stop_grpc_server(server, 5.0)


async def test_a_client_trusting_the_certificate_is_served(tls_port) -> None:
    port, certificate = tls_port
    credentials = grpc.ssl_channel_credentials(root_certificates=certificate)
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        stub = GRPCInferenceServiceStub(channel)
        assert (await stub.ServerLive(pb.ServerLiveRequest(), timeout=10)).live is True


async def test_a_plaintext_client_is_refused(tls_port) -> None:
    port, _ = tls_port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ServerLive(pb.ServerLiveRequest(), timeout=10)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_a_missing_key_file_fails_startup_naming_it(repository, decoder, tmp_path) -> None:
    models, _ = repository
    tls = self_signed_certificate(tmp_path)
    tls.key_file.unlink()
    config = ServerConfig(grpc=GrpcConfig(port=free_port()), tls=tls)
    with pytest.raises(OSError, match=r"cannot read .*key\.pem"):
        await start_grpc_server(models, config, "127.0.0.1", decoder)


async def test_a_file_that_is_not_a_certificate_fails_startup(
    repository, decoder, tmp_path
) -> None:
    models, _ = repository
    tls = self_signed_certificate(tmp_path)
    tls.cert_file.write_text("not a certificate")
    config = ServerConfig(grpc=GrpcConfig(port=free_port()), tls=tls)
    with pytest.raises(OSError, match=r"server\.tls holds no valid certificate"):
        await start_grpc_server(models, config, "127.0.0.1", decoder)

"""Bearer tokens over gRPC: `authorization` metadata, checked before the servicer runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_harness import call_error, images, infer_request
from local_ports import free_port

from service.auth import Authenticator
from service.config import GrpcConfig, ServerConfig
from service.grpc import start_grpc_server, stop_grpc_server
from service.grpc.generated import grpc_service_pb2 as pb
from service.grpc.generated.grpc_service_pb2_grpc import GRPCInferenceServiceStub

API = (("authorization", "Bearer api-token"),)
INFERENCE = (("authorization", "Bearer inference-token"),)
WRONG = (("authorization", "Bearer wrong"),)
MALFORMED = (("authorization", "Basic YTpi"),)


async def started(repository, decoder, auth: Authenticator) -> tuple[grpc.aio.Server, int]:
    models, _ = repository
    config = ServerConfig(grpc=GrpcConfig(port=free_port()))
    server = await start_grpc_server(models, config, "127.0.0.1", decoder, auth=auth)
    return server, config.grpc.port


@pytest.fixture
async def stub(repository, decoder, request) -> AsyncIterator[GRPCInferenceServiceStub]:
    """A stub of a server whose Authenticator is the test's `auth` parameter."""
    server, port = await started(repository, decoder, request.param)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield GRPCInferenceServiceStub(channel)
    await stop_grpc_server(server, 5.0)


API_ONLY = Authenticator(b"api-token")
WITH_INFERENCE = Authenticator(b"api-token", b"inference-token")
READS_PROTECTED = Authenticator(b"api-token", b"inference-token", protect_reads=True)
UNLOAD = pb.RepositoryModelUnloadRequest(model_name="tiny")


@pytest.mark.parametrize("stub", [API_ONLY], indirect=True)
async def test_management_rpcs_need_the_api_token(stub):
    missing = await call_error(stub.RepositoryModelUnload, UNLOAD)
    assert missing.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "missing bearer token" in missing.details()
    malformed = await call_error(stub.RepositoryModelUnload, UNLOAD, metadata=MALFORMED)
    assert malformed.code() is grpc.StatusCode.UNAUTHENTICATED
    wrong = await call_error(stub.RepositoryModelUnload, UNLOAD, metadata=WRONG)
    assert wrong.code() is grpc.StatusCode.PERMISSION_DENIED
    assert wrong.details() == "the bearer token does not grant management operations"


@pytest.mark.parametrize("stub", [API_ONLY], indirect=True)
async def test_inference_and_reads_are_open_by_default(stub):
    response = await stub.ModelInfer(infer_request(images(0), raw=True))
    assert response.model_name == "tiny"
    assert (await stub.ModelMetadata(pb.ModelMetadataRequest(name="tiny"))).name == "tiny"


@pytest.mark.parametrize("stub", [WITH_INFERENCE], indirect=True)
async def test_an_inference_token_guards_model_infer(stub):
    request = infer_request(images(0), raw=True)
    assert (await call_error(stub.ModelInfer, request)).code() is grpc.StatusCode.UNAUTHENTICATED
    wrong = await call_error(stub.ModelInfer, request, metadata=WRONG)
    assert wrong.code() is grpc.StatusCode.PERMISSION_DENIED
    for metadata in (INFERENCE, API):
        assert (await stub.ModelInfer(request, metadata=metadata)).model_name == "tiny"
    denied = await call_error(stub.RepositoryModelUnload, UNLOAD, metadata=INFERENCE)
    assert denied.code() is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("stub", [WITH_INFERENCE], indirect=True)
async def test_an_inference_token_guards_model_stream_infer(stub):
    request = infer_request(images(0), raw=True, id="one")
    refused = stub.ModelStreamInfer(iter([request]))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        [response async for response in refused]
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    answers = [answer async for answer in stub.ModelStreamInfer(iter([request]), metadata=API)]
    assert [answer.infer_response.id for answer in answers] == ["one"]


@pytest.mark.parametrize("stub", [READS_PROTECTED], indirect=True)
async def test_protect_reads_guards_metadata(stub):
    request = pb.ModelMetadataRequest(name="tiny")
    missing = await call_error(stub.ModelMetadata, request)
    assert missing.code() is grpc.StatusCode.UNAUTHENTICATED
    for metadata in (INFERENCE, API):
        assert (await stub.ModelMetadata(request, metadata=metadata)).name == "tiny"

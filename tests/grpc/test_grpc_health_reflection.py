"""The standard gRPC health service (Kubernetes gRPC probes) and server reflection (grpcurl),
over a real channel on 127.0.0.1."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_harness import Serving, call_error

from service.grpc.generated import health_pb2, reflection_pb2
from service.grpc.generated.health_pb2_grpc import HealthStub
from service.grpc.generated.reflection_pb2_grpc import ServerReflectionStub

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
SERVICES = ["inference.GRPCInferenceService", "grpc.health.v1.Health"]
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


async def check(serving: Serving, service: str) -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    return (await HealthStub(serving.channel).Check(request)).status


async def reflect(
    serving: Serving, *requests: reflection_pb2.ServerReflectionRequest
) -> list[reflection_pb2.ServerReflectionResponse]:
    stub = ServerReflectionStub(serving.channel)
    return [response async for response in stub.ServerReflectionInfo(iter(requests))]


# --- health --------------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["", "inference.GRPCInferenceService"])
async def test_the_server_is_serving_while_ready_and_not_after(
    serving: Serving, service: str
) -> None:
    assert await check(serving, service) == SERVING
    await serving.repository.close()
    assert await check(serving, service) == NOT_SERVING


async def test_a_model_is_serving_when_it_is_ready(serving: Serving) -> None:
    assert await check(serving, "tiny") == SERVING
    assert await check(serving, "broken") == NOT_SERVING


async def test_checking_an_unknown_service_is_not_found(serving: Serving) -> None:
    stub = HealthStub(serving.channel)
    error = await call_error(stub.Check, health_pb2.HealthCheckRequest(service="nope"))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "'nope'" in error.details()


async def test_watch_sends_the_status_then_its_change(serving: Serving) -> None:
    watch = HealthStub(serving.channel).Watch(health_pb2.HealthCheckRequest(service=""))
    assert (await asyncio.wait_for(watch.read(), 10)).status == SERVING
    await serving.repository.close()
    assert (await asyncio.wait_for(watch.read(), 10)).status == NOT_SERVING
    watch.cancel()


async def test_watch_ends_after_not_serving_when_the_server_drains(serving: Serving) -> None:
    watch = HealthStub(serving.channel).Watch(health_pb2.HealthCheckRequest(service=""))
    assert (await asyncio.wait_for(watch.read(), 10)).status == SERVING
    serving.repository.drain()
    assert (await asyncio.wait_for(watch.read(), 10)).status == NOT_SERVING
    assert await asyncio.wait_for(watch.read(), 10) is grpc.aio.EOF
    assert await watch.code() is grpc.StatusCode.OK


async def test_watching_an_unknown_service_sends_service_unknown(serving: Serving) -> None:
    watch = HealthStub(serving.channel).Watch(health_pb2.HealthCheckRequest(service="nope"))
    assert (await asyncio.wait_for(watch.read(), 10)).status == SERVICE_UNKNOWN
    watch.cancel()


async def test_list_gives_the_server_and_every_model(serving: Serving) -> None:
    response = await HealthStub(serving.channel).List(health_pb2.HealthListRequest())
    statuses = {service: entry.status for service, entry in response.statuses.items()}
    assert statuses == {"": SERVING, "tiny": SERVING, "broken": NOT_SERVING}


# --- reflection ----------------------------------------------------------------------------


async def test_reflection_lists_the_services(serving: Serving) -> None:
    (response,) = await reflect(serving, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = [service.name for service in response.list_services_response.service]
    assert names == [*SERVICES, REFLECTION]


async def test_reflection_gives_a_service_file_with_its_imports(serving: Serving) -> None:
    request = reflection_pb2.ServerReflectionRequest(
        host="h", file_containing_symbol="inference.GRPCInferenceService"
    )
    (response,) = await reflect(serving, request)
    assert response.valid_host == "h" and response.original_request == request
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(blob)
        for blob in response.file_descriptor_response.file_descriptor_proto
    ]
    assert [file.name for file in files] == ["grpc_service.proto", "model_config.proto"]
    (service,) = files[0].service
    methods = {method.name: method for method in service.method}
    assert methods["ModelStreamInfer"].client_streaming
    assert methods["ModelConfig"].output_type == ".inference.ModelConfigResponse"


async def test_reflection_answers_several_requests_on_one_stream(serving: Serving) -> None:
    responses = await reflect(
        serving,
        reflection_pb2.ServerReflectionRequest(file_by_filename="grpc_health/v1/health.proto"),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.Such"),
        reflection_pb2.ServerReflectionRequest(
            all_extension_numbers_of_type="inference.ModelConfig"
        ),
    )
    (health_file,) = responses[0].file_descriptor_response.file_descriptor_proto
    assert descriptor_pb2.FileDescriptorProto.FromString(health_file).package == "grpc.health.v1"
    assert responses[1].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "no.Such" in responses[1].error_response.error_message
    extensions = responses[2].all_extension_numbers_response
    assert (extensions.base_type_name, list(extensions.extension_number)) == (
        "inference.ModelConfig",
        [],
    )

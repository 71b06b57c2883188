"""The standard gRPC services beside the inference one, as generic tools call them: the health
check of Kubernetes gRPC probes (plain grpcio) and server reflection (grpcio-reflection's
client, as grpcurl uses it). Both run in the client venv."""

from __future__ import annotations

import pytest
from client_checks import result_of

pytestmark = pytest.mark.clients

SERVING = 1  # grpc.health.v1.HealthCheckResponse.ServingStatus


def test_health_check_of_the_whole_server_is_serving(run_client_script, blockserve) -> None:
    outcomes = run_client_script("grpc_health_cases.py", blockserve.grpc_address)
    assert result_of(outcomes, "server") == SERVING


@pytest.fixture(scope="module")
def reflected(run_client_script, blockserve) -> dict:
    return run_client_script("grpc_reflection_cases.py", blockserve.grpc_address)


def test_reflection_lists_the_services(reflected) -> None:
    services = set(result_of(reflected, "services"))
    assert services >= {"inference.GRPCInferenceService", "grpc.health.v1.Health"}


def test_reflection_describes_the_inference_service(reflected) -> None:
    methods = set(result_of(reflected, "inference_methods"))
    assert methods >= {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata",
                       "ModelMetadata", "ModelInfer", "ModelStreamInfer", "ModelConfig",
                       "ModelStatistics"}  # fmt: skip


def test_reflection_describes_the_messages(reflected) -> None:
    fields = set(result_of(reflected, "infer_request_fields"))
    assert fields >= {"model_name", "id", "inputs", "outputs", "raw_input_contents"}

"""`grpc.health.v1.Health`, the standard gRPC health service (Kubernetes gRPC probes,
grpc_health_probe): readiness by service name.

The service "" (and the inference service's own name) is the server: SERVING when it is
ready, as `ServerReady` says. A model's name is that model: SERVING when it is READY. Any other
name is unknown: NOT_FOUND for Check, SERVICE_UNKNOWN for Watch, as the protocol specifies.
While the server drains for shutdown, its status is NOT_SERVING and Watch streams end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from service.grpc.generated import grpc_service_pb2, health_pb2
from service.grpc.generated.health_pb2_grpc import HealthServicer
from service.repository import ModelRepository, ModelState

SERVER_SERVICES = (
    "",
    grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
)
# How often Watch looks at the readiness it reports (the repository has no change events).
WATCH_INTERVAL_S = 0.5
Status = health_pb2.HealthCheckResponse.ServingStatus
Context = grpc.aio.ServicerContext


class HealthService(HealthServicer):
    """Check, Watch and List over the readiness of the server and of each model."""

    def __init__(self, repository: ModelRepository) -> None:
        self._repository = repository

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: Context
    ) -> health_pb2.HealthCheckResponse:
        status = self._status(request.service)
        if status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: Context
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """The status now, then each change of it, until the client cancels or the server
        drains for shutdown (then, after NOT_SERVING, the stream ends: an open stream would
        hold up the shutdown)."""
        sent = None
        while True:
            status = self._status(request.service)
            if status != sent:
                yield health_pb2.HealthCheckResponse(status=status)
                sent = status
            if self._repository.draining:
                return
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def List(
        self, request: health_pb2.HealthListRequest, context: Context
    ) -> health_pb2.HealthListResponse:
        """The server ("") and every model."""
        response = health_pb2.HealthListResponse()
        for service in ("", *self._repository.names):
            response.statuses[service].status = self._status(service)
        return response

    def _status(self, service: str) -> Status:
        if service in SERVER_SERVICES:
            ready = self._repository.ready
        elif service in self._repository.names:
            ready = self._repository.get(service).state is ModelState.READY
        else:
            return health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        return (
            health_pb2.HealthCheckResponse.SERVING
            if ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )

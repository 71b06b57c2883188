"""`inference.GRPCInferenceService`: the V2 RPCs over the shared model repository.

Errors answer with the status code of their `ServingError` (`service.grpc.status`). ModelInfer
goes through `ModelHandle.infer`, so gRPC and REST requests queue in the same batchers; the
client's gRPC deadline becomes the batcher deadline, and each ModelInfer is counted in the
Prometheus metrics with `protocol="grpc"` and the status code's name.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from service.errors import ServingError
from service.grpc.codec import decode_inputs, encode_outputs, uses_raw_contents
from service.grpc.generated import grpc_predict_v2_pb2 as pb
from service.grpc.generated.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceServicer
from service.grpc.status import status_code, trailing_metadata
from service.repository import ModelRepository, ModelState
from service.v2 import (
    check_version,
    model_input,
    model_metadata,
    model_outputs,
    requested_outputs,
    server_metadata,
)

log = logging.getLogger(__name__)

PROTOCOL = "grpc"
# The client's deadline passes slightly before the server's copy of it (the timeout travels
# with the call), so a cancellation this close to the deadline is counted as the deadline's.
DEADLINE_SLACK_S = 0.1
Context = grpc.aio.ServicerContext
Handler = Callable[..., Awaitable[Any]]


def _maps_errors(method: Handler) -> Handler:
    """Answer a `ServingError` with its status code and message instead of UNKNOWN."""

    @functools.wraps(method)
    async def handler(self, request, context: Context):
        try:
            return await method(self, request, context)
        except ServingError as error:
            await context.abort(status_code(error), error.message, trailing_metadata(error))

    return handler


class InferenceServicer(GRPCInferenceServiceServicer):
    def __init__(self, repository: ModelRepository) -> None:
        self._repository = repository
        self._metrics = repository.metrics

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context):
        return pb.ServerReadyResponse(ready=self._repository.ready)

    @_maps_errors
    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context):
        handle = self._repository.get(request.name)
        check_version(handle, request.version)
        return pb.ModelReadyResponse(ready=handle.state is ModelState.READY)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Context):
        return pb.ServerMetadataResponse(**server_metadata())

    @_maps_errors
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Context):
        handle = self._repository.get(request.name)
        check_version(handle, request.version)
        metadata = model_metadata(handle)  # the REST body; gRPC has no `parameters` field
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=[tensor(**entry) for entry in metadata["inputs"]],
            outputs=[tensor(**entry) for entry in metadata["outputs"]],
        )

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context):
        # Each outcome is recorded before it is sent: abort() sends the status, then raises.
        started = time.monotonic()
        try:
            response = await self._infer(request, context)
        except ServingError as error:
            self._record(request, status_code(error), started)
            await context.abort(status_code(error), error.message, trailing_metadata(error))
        except asyncio.CancelledError:  # the client cancelled, or its deadline passed
            remaining = context.time_remaining()
            expired = remaining is not None and remaining <= DEADLINE_SLACK_S
            code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
            self._record(request, code, started)
            raise
        except Exception as error:
            log.exception("ModelInfer on model %r failed", request.model_name)
            self._record(request, grpc.StatusCode.INTERNAL, started)
            message = f"internal error: {type(error).__name__}: {error}"
            await context.abort(grpc.StatusCode.INTERNAL, message)
        self._record(request, grpc.StatusCode.OK, started)
        return response

    async def _infer(self, request: pb.ModelInferRequest, context: Context):
        handle = self._repository.get(request.model_name)
        check_version(handle, request.model_version)
        batch = model_input(handle, decode_inputs(request))  # (N, *input_shape) float32
        output_names = requested_outputs(handle, [output.name for output in request.outputs])
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        logits = await handle.infer(batch, deadline)  # (N, num_classes)
        outputs = model_outputs(handle, logits, output_names)
        response = pb.ModelInferResponse(
            model_name=handle.name, model_version=handle.version, id=request.id
        )
        encode_outputs(response, outputs, raw=uses_raw_contents(request))
        return response

    def _record(self, request: pb.ModelInferRequest, code: grpc.StatusCode, started: float) -> None:
        # Unknown names stay out of the labels: client input never becomes a label value.
        model = request.model_name if request.model_name in self._repository.names else ""
        self._metrics.record_request(model, code.name, PROTOCOL, time.monotonic() - started)

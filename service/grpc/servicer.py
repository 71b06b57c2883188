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
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import grpc
import numpy as np

from service.errors import ServingError
from service.grpc.codec import decode_inputs, encode_response, parse_request, uses_raw_contents
from service.grpc.generated import grpc_predict_v2_pb2 as pb
from service.grpc.generated.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceServicer
from service.grpc.status import status_code, trailing_metadata
from service.offload import Offloader
from service.repository import ModelHandle, ModelRepository, ModelState
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
INTERNAL_ERROR = "internal error (see the server log)"
# Messages up to this size are parsed, decoded and encoded on the event loop: below it a hop
# to a decode thread costs more than the work, which then stalls the loop for microseconds.
INLINE_MAX_BYTES = 64 * 1024
Context = grpc.aio.ServicerContext
T = TypeVar("T")
RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")
Handler = Callable[["InferenceServicer", RequestT, Context], Awaitable[ResponseT]]


@dataclass
class Prepared:
    """A ModelInfer request once decoded: all that is kept of it during inference."""

    handle: ModelHandle
    batch: np.ndarray  # (N, *input_shape) float32
    output_names: list[str]
    header: pb.ModelInferResponse  # the response's name, version and id
    raw: bool  # answer in raw_output_contents


def _decoded_batch(handle: ModelHandle, request: pb.ModelInferRequest) -> np.ndarray:
    """The request's tensors as the model's (N, *input_shape) float32 batch."""
    return model_input(handle, decode_inputs(request))


def _maps_errors(method: Handler[RequestT, ResponseT]) -> Handler[RequestT, ResponseT]:
    """Answer a `ServingError` with its status code and message instead of UNKNOWN, and any
    other error with INTERNAL and no detail (it is logged)."""

    @functools.wraps(method)
    async def handler(self: InferenceServicer, request: RequestT, context: Context) -> ResponseT:
        try:
            return await method(self, request, context)
        except ServingError as error:
            await context.abort(status_code(error), error.message, trailing_metadata(error))
        except Exception:
            log.exception("%s failed", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_ERROR)

    return handler


class InferenceServicer(GRPCInferenceServiceServicer):
    """The V2 RPCs. `ModelInfer` takes and returns wire bytes (`service.grpc.server` registers
    it without (de)serializers), so that large messages are parsed and encoded by `decoder`."""

    def __init__(self, repository: ModelRepository, decoder: Offloader) -> None:
        self._repository = repository
        self._metrics = repository.metrics
        self._decoder = decoder

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @_maps_errors
    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._repository.ready)

    @_maps_errors
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        handle = self._repository.get(request.name)
        check_version(handle, request.version)
        return pb.ModelReadyResponse(ready=handle.state is ModelState.READY)

    @_maps_errors
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**server_metadata())

    @_maps_errors
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
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

    async def ModelInfer(self, message: bytes, context: Context) -> bytes:
        # Each outcome is recorded before it is sent: abort() sends the status, then raises.
        started = time.monotonic()
        remaining = context.time_remaining()
        deadline = None if remaining is None else started + remaining
        model_name = ""  # until the message is parsed
        try:
            parse = partial(parse_request, message)
            request = await self._off_loop(len(message), parse, deadline)
            model_name = request.model_name
            prepared = await self._prepare(request, len(message), deadline)
            del request  # its tensors are decoded: free the message before inference
            response = await self._answer(prepared, deadline)
        except ServingError as error:
            self._record(model_name, status_code(error), started)
            await context.abort(status_code(error), error.message, trailing_metadata(error))
        except asyncio.CancelledError:  # the client cancelled, or its deadline passed
            remaining = context.time_remaining()
            expired = remaining is not None and remaining <= DEADLINE_SLACK_S
            code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
            self._record(model_name, code, started)
            raise
        except Exception:
            log.exception("ModelInfer on model %r failed", model_name)
            self._record(model_name, grpc.StatusCode.INTERNAL, started)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_ERROR)
        self._record(model_name, grpc.StatusCode.OK, started)
        return response

    async def _prepare(
        self, request: pb.ModelInferRequest, size: int, deadline: float | None
    ) -> Prepared:
        """Checks and decodes `request`, `size` bytes on the wire."""
        handle = self._repository.get(request.model_name)
        check_version(handle, request.model_version)
        output_names = requested_outputs(handle, [output.name for output in request.outputs])
        decode = partial(_decoded_batch, handle, request)
        batch = await self._off_loop(size, decode, deadline)
        header = pb.ModelInferResponse(
            model_name=handle.name, model_version=handle.version, id=request.id
        )
        return Prepared(handle, batch, output_names, header, uses_raw_contents(request))

    async def _answer(self, prepared: Prepared, deadline: float | None) -> bytes:
        """Infers `prepared` and encodes the response."""
        handle = prepared.handle
        logits = await handle.infer(prepared.batch, deadline)  # (N, num_classes)
        outputs = model_outputs(handle, logits, prepared.output_names)
        size = sum(output.array.nbytes for output in outputs)
        encode = partial(encode_response, prepared.header, outputs, raw=prepared.raw)
        return await self._off_loop(size, encode, deadline)

    async def _off_loop(self, size: int, job: Callable[[], T], deadline: float | None) -> T:
        """`job()` for a message of `size` bytes: inline when small, else on a decode thread
        (`ServerBusy` when too many wait for one)."""
        return await self._decoder.run_unless_small(size, INLINE_MAX_BYTES, job, deadline)

    def _record(self, model_name: str, code: grpc.StatusCode, started: float) -> None:
        # Unknown names stay out of the labels: client input never becomes a label value.
        model = model_name if model_name in self._repository.names else ""
        self._metrics.record_request(model, code.name, PROTOCOL, time.monotonic() - started)

"""`inference.GRPCInferenceService` (Triton's gRPC service, a superset of the KServe V2 one):
the RPCs over the shared model repository.

Errors answer with the status code of their `ServingError` (`service.grpc.status`). ModelInfer
and ModelStreamInfer go through `ModelHandle.infer`, so gRPC and REST requests queue in the
same batchers; the client's gRPC deadline becomes the batcher deadline, and each inference
request is counted in the Prometheus metrics with `protocol="grpc"` and the status code's name.
A failed request of a stream answers with its `error_message` and the stream goes on, as
Triton's does. The repository RPCs (Triton's model repository extension) change what is served
through the `ModelManager`; shared-memory, trace and log RPCs answer UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import grpc
import numpy as np
from google.protobuf.json_format import ParseDict

from service.errors import InvalidInput, ServingError, quoted
from service.grpc.codec import (
    decode_inputs,
    encode_response,
    output_requests,
    parameter_values,
    parse_request,
    stream_error,
    stream_response,
    uses_raw_contents,
)
from service.grpc.generated import grpc_service_pb2 as pb
from service.grpc.generated import model_config_pb2
from service.grpc.generated.grpc_service_pb2_grpc import GRPCInferenceServiceServicer
from service.grpc.status import status_code, trailing_metadata
from service.grpc.stream import answer_concurrently
from service.management import ModelManager
from service.offload import Offloader
from service.repository import ModelHandle, ModelRepository, ModelState
from service.v2 import (
    model_input,
    model_metadata,
    model_outputs,
    requested_outputs,
    server_metadata,
)
from service.v2.inference import OutputRequest, response_id
from service.v2.model_config import model_config
from service.v2.model_repository import (
    CONFIG_PARAMETER,
    UNLOAD_DEPENDENTS,
    load_model,
    repository_index,
    unload_model,
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
# Requests of one stream read but not yet answered to the client, at most.
STREAM_WINDOW = 512
SHARED_MEMORY_RPC = "shared memory is not supported: send the tensors in the request"
SETTINGS_RPC = "trace and log settings are not served"
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
    outputs: list[OutputRequest]
    header: pb.ModelInferResponse  # the response's name, version and id
    raw: bool  # answer in raw_output_contents


@dataclass
class InferCall:
    """One inference request while it is answered: what its metrics and errors need."""

    started: float
    deadline: float | None
    model_name: str = ""  # until the message is parsed
    request_id: str = ""
    handle: ModelHandle | None = None  # once the model version is known


def _decoded_batch(handle: ModelHandle, request: pb.ModelInferRequest) -> np.ndarray:
    """The request's tensors as the model's (N, *input_shape) float32 batch."""
    return model_input(handle, decode_inputs(request))


def _deadline(context: Context, now: float) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else now + remaining


def _cancelled_code(context: Context) -> grpc.StatusCode:
    """Why a call was cancelled: its deadline passed, or the client cancelled it."""
    remaining = context.time_remaining()
    expired = remaining is not None and remaining <= DEADLINE_SLACK_S
    return grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED


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


def _repository_parameters(
    parameters: Mapping[str, pb.ModelRepositoryParameter], accepted: dict[str, str]
) -> dict[str, Any]:
    """The values of a repository RPC's `parameters`, each of the kind (oneof field) that
    `accepted` names; `InvalidInput` for any other name or kind."""
    values = {}
    for name, parameter in parameters.items():
        kind = accepted.get(name)
        if kind is None:
            raise InvalidInput(
                f"unsupported parameter {quoted(name)}; accepted: {', '.join(accepted)}"
            )
        given = parameter.WhichOneof("parameter_choice")
        if given != kind:
            raise InvalidInput(f"parameter {name!r} must be a {kind}, got {given or 'none'}")
        values[name] = getattr(parameter, kind)
    return values


def _unimplemented(rpc: str, reason: str) -> Handler[Any, Any]:
    async def handler(self: InferenceServicer, request: Any, context: Context) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{rpc}: {reason}")

    handler.__name__ = rpc
    return handler


class InferenceServicer(GRPCInferenceServiceServicer):
    """The RPCs. `ModelInfer` and `ModelStreamInfer` take and return wire bytes
    (`service.grpc.server` registers them without (de)serializers), so that large messages are
    parsed and encoded by `decoder`."""

    def __init__(
        self,
        repository: ModelRepository,
        decoder: Offloader,
        manager: ModelManager | None = None,
    ) -> None:
        self._repository = repository
        self._metrics = repository.metrics
        self._decoder = decoder
        # None: run-time changes are made but not recorded (no `ModelStore`).
        self._manager = manager or ModelManager(repository, None)

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
        handle = self._model(request.name, request.version)
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
        handle = self._model(request.name, request.version)
        metadata = model_metadata(handle, self._repository.version_names(handle.name))
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(  # the REST body; gRPC has no `parameters` field
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=[tensor(**entry) for entry in metadata["inputs"]],
            outputs=[tensor(**entry) for entry in metadata["outputs"]],
        )

    @_maps_errors
    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: Context
    ) -> pb.ModelConfigResponse:
        config = model_config(self._model(request.name, request.version))
        return pb.ModelConfigResponse(config=ParseDict(config, model_config_pb2.ModelConfig()))

    @_maps_errors
    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Context
    ) -> pb.ModelStatisticsResponse:
        """Every model's statistics for an empty name, else the named model's."""
        if request.name:
            handles = [self._model(request.name, request.version)]
        else:
            handles = self._repository.handles
        report = self._metrics.statistics.report(handles)
        return ParseDict(report, pb.ModelStatisticsResponse())

    async def ModelInfer(self, message: bytes, context: Context) -> bytes:
        # Each outcome is recorded before it is sent: abort() sends the status, then raises.
        started = time.monotonic()
        call = InferCall(started, _deadline(context, started))
        try:
            response = await self._infer(message, call)
        except ServingError as error:
            self._record(call, status_code(error))
            await context.abort(status_code(error), error.message, trailing_metadata(error))
        except asyncio.CancelledError:  # the client cancelled, or its deadline passed
            self._record(call, _cancelled_code(context))
            raise
        except Exception:
            log.exception("ModelInfer on model %r failed", call.model_name)
            self._record(call, grpc.StatusCode.INTERNAL)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_ERROR)
        self._record(call, grpc.StatusCode.OK)
        return response

    async def ModelStreamInfer(
        self, messages: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[bytes]:
        """Answers each request of the stream as soon as it is inferred (requests run
        concurrently, so that they can share batches; the `id` pairs answers with requests).
        The stream ends once the client has closed its side and every request is answered."""
        deadline = _deadline(context, time.monotonic())
        answer = partial(self._stream_answer, deadline=deadline, context=context)
        async for response in answer_concurrently(messages, answer, STREAM_WINDOW):
            yield response

    @_maps_errors
    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Context
    ) -> pb.RepositoryIndexResponse:
        """Every served model version, and the unloaded models (UNAVAILABLE, with the reason);
        `repository_name` is ignored: there is one repository."""
        index = repository_index(self._repository, request.ready)
        return pb.RepositoryIndexResponse(
            models=[pb.RepositoryIndexResponse.ModelIndex(**entry) for entry in index]
        )

    @_maps_errors
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        """Load `model_name` from the `config` parameter (a JSON string), or reload it."""
        parameters = _repository_parameters(request.parameters, {CONFIG_PARAMETER: "string_param"})
        await load_model(self._manager, request.model_name, parameters.get(CONFIG_PARAMETER))
        return pb.RepositoryModelLoadResponse()

    @_maps_errors
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        """Unload every version of `model_name` (`unload_dependents` is accepted: blockserve
        models have no dependents)."""
        _repository_parameters(request.parameters, {UNLOAD_DEPENDENTS: "bool_param"})
        await unload_model(self._manager, request.model_name)
        return pb.RepositoryModelUnloadResponse()

    SystemSharedMemoryStatus = _unimplemented("SystemSharedMemoryStatus", SHARED_MEMORY_RPC)
    SystemSharedMemoryRegister = _unimplemented("SystemSharedMemoryRegister", SHARED_MEMORY_RPC)
    SystemSharedMemoryUnregister = _unimplemented("SystemSharedMemoryUnregister", SHARED_MEMORY_RPC)
    CudaSharedMemoryStatus = _unimplemented("CudaSharedMemoryStatus", SHARED_MEMORY_RPC)
    CudaSharedMemoryRegister = _unimplemented("CudaSharedMemoryRegister", SHARED_MEMORY_RPC)
    CudaSharedMemoryUnregister = _unimplemented("CudaSharedMemoryUnregister", SHARED_MEMORY_RPC)
    TraceSetting = _unimplemented("TraceSetting", SETTINGS_RPC)
    LogSettings = _unimplemented("LogSettings", SETTINGS_RPC)

    def _model(self, name: str, version: str) -> ModelHandle:
        return self._repository.get(name, version)

    async def _stream_answer(
        self, message: bytes, deadline: float | None, context: Context
    ) -> bytes:
        """One request of a stream: its ModelStreamInferResponse, an error one included."""
        call = InferCall(time.monotonic(), deadline)
        try:
            response = await self._infer(message, call)
        except ServingError as error:
            self._record(call, status_code(error))
            return stream_error(error.message, call.request_id)
        except asyncio.CancelledError:
            self._record(call, _cancelled_code(context))
            raise
        except Exception:
            log.exception("ModelStreamInfer on model %r failed", call.model_name)
            self._record(call, grpc.StatusCode.INTERNAL)
            return stream_error(INTERNAL_ERROR, call.request_id)
        self._record(call, grpc.StatusCode.OK)
        return stream_response(response)

    async def _infer(self, message: bytes, call: InferCall) -> bytes:
        """The encoded ModelInferResponse to the ModelInferRequest `message`."""
        request = await self._off_loop(len(message), partial(parse_request, message), call)
        call.model_name, call.request_id = request.model_name, request.id
        prepared = await self._prepare(request, len(message), call)
        del request  # its tensors are decoded: free the message before inference
        return await self._answer(prepared, call)

    async def _prepare(self, request: pb.ModelInferRequest, size: int, call: InferCall) -> Prepared:
        """Checks and decodes `request`, `size` bytes on the wire."""
        handle = call.handle = self._model(request.model_name, request.model_version)
        parameter_values(request.parameters, "request")
        outputs = requested_outputs(handle, output_requests(request))
        decode = partial(_decoded_batch, handle, request)
        batch = await self._off_loop(size, decode, call)
        header = pb.ModelInferResponse(
            model_name=handle.name, model_version=handle.version, id=response_id(request.id or None)
        )
        return Prepared(handle, batch, outputs, header, uses_raw_contents(request))

    async def _answer(self, prepared: Prepared, call: InferCall) -> bytes:
        """Infers `prepared` and encodes the response."""
        handle = prepared.handle
        logits = await handle.infer(prepared.batch, call.deadline)  # (N, num_classes)
        outputs = model_outputs(handle, logits, prepared.outputs)
        size = sum(output.array.nbytes for output in outputs)
        encode = partial(encode_response, prepared.header, outputs, raw=prepared.raw)
        return await self._off_loop(size, encode, call)

    async def _off_loop(self, size: int, job: Callable[[], T], call: InferCall) -> T:
        """`job()` for a message of `size` bytes: inline when small, else on a decode thread
        (`ServerBusy` when too many wait for one)."""
        return await self._decoder.run_unless_small(size, INLINE_MAX_BYTES, job, call.deadline)

    def _record(self, call: InferCall, code: grpc.StatusCode) -> None:
        # Unknown names stay out of the labels: client input never becomes a label value.
        handle = call.handle
        name, version = (handle.name, handle.version) if handle else ("", "")
        seconds = time.monotonic() - call.started
        self._metrics.record_request(name, version, code.name, PROTOCOL, seconds)

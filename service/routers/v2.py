"""KServe Open Inference Protocol V2 over REST.

Health answers by status code (200 true, 400 false); errors are `{"error": "..."}`. Infer
takes JSON tensors (flat or nested data) that are the model's input directly: no image
decoding. See `service.v2` for the datatypes accepted.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from service.errors import InvalidInput
from service.repository import ModelHandle, ModelState
from service.routers.common import (
    OrjsonResponse,
    Serving,
    infer_unless_disconnected,
    read_body,
    recorded,
    request_deadline,
    serving,
)
from service.v2 import (
    InputTensor,
    check_version,
    model_input,
    model_metadata,
    model_outputs,
    requested_outputs,
    server_metadata,
    tensor_from_data,
    tensor_to_data,
)

router = APIRouter(prefix="/v2", tags=["v2"])
State = Annotated[Serving, Depends(serving)]
NOT_READY = 400  # the protocol: "a 4xx status code indicates false"


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RequestInput(_Message):
    name: str
    shape: list[StrictInt]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class RequestOutput(_Message):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(_Message):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": InferenceRequest.model_json_schema()}},
    }
}


@router.get("")
async def server_metadata_endpoint() -> Response:
    """Server metadata: name, version, extensions."""
    return OrjsonResponse(server_metadata())


@router.get("/health/live")
async def server_live() -> Response:
    return Response(status_code=200)


@router.get("/health/ready")
async def server_ready(state: State) -> Response:
    return Response(status_code=200 if state.repository.ready else NOT_READY)


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(name: str, state: State, version: str | None = None) -> Response:
    handle = state.repository.get(name)
    check_version(handle, version)
    return Response(status_code=200 if handle.state is ModelState.READY else NOT_READY)


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata_endpoint(name: str, state: State, version: str | None = None) -> Response:
    """Model metadata; the batch dimension is -1."""
    handle = state.repository.get(name)
    check_version(handle, version)
    return OrjsonResponse(model_metadata(handle))


@router.post("/models/{name}/infer", openapi_extra=INFER_BODY)
@router.post("/models/{name}/versions/{version}/infer", openapi_extra=INFER_BODY)
async def model_infer(
    request: Request, name: str, state: State, version: str | None = None
) -> Response:
    """Inference on JSON tensors; outputs are flat row-major data."""
    with recorded(state.metrics) as record:
        deadline = request_deadline(request)
        handle = state.repository.get(name)
        record.model = handle.name
        check_version(handle, version)
        handle.ready()
        with handle.announce():
            body = await read_body(request, state.config.server.limits.max_body_bytes)
            work = functools.partial(decode_request, handle, body)
            loop = asyncio.get_running_loop()
            payload, output_names, batch = await loop.run_in_executor(state.decode_pool, work)
        logits = await infer_unless_disconnected(request, handle, batch, deadline)
        outputs = model_outputs(handle, logits, output_names)
        record.status = 200
        return OrjsonResponse(
            {
                "model_name": handle.name,
                "model_version": handle.version,
                "id": payload.id if payload.id is not None else uuid.uuid4().hex,
                "outputs": [
                    {
                        "name": tensor.name,
                        "datatype": tensor.datatype,
                        "shape": list(tensor.array.shape),
                        "data": tensor_to_data(tensor.array),
                    }
                    for tensor in outputs
                ],
            }
        )


def decode_request(
    handle: ModelHandle, body: bytes
) -> tuple[InferenceRequest, list[str], np.ndarray]:
    """Parse and validate an infer request: the payload, the output names to answer with and
    the model's batch. Blocking: runs in the decode pool."""
    try:
        payload = InferenceRequest.model_validate(orjson.loads(body))
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"body is not valid JSON: {error}") from None
    except ValidationError as error:
        raise InvalidInput(f"invalid inference request: {_first_problem(error)}") from None
    tensors = []
    for item in payload.inputs:
        if item.parameters and "binary_data_size" in item.parameters:
            raise InvalidInput(f"input {item.name!r}: binary tensor data is not supported")
        array = tensor_from_data(item.name, item.datatype, item.shape, item.data)
        tensors.append(InputTensor(item.name, item.datatype, array))
    output_names = requested_outputs(handle, [output.name for output in payload.outputs or ()])
    return payload, output_names, model_input(handle, tensors)


def _first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem["loc"])
    return f"{where.lstrip('.') or 'body'}: {problem['msg']}"

"""ModelInfer messages <-> serving values: tensors (typed `InferTensorContents` and
little-endian raw bytes), `InferParameter` values, requested outputs and stream responses.

Only the gRPC wire encoding lives here. Datatype names, shape checks and raw byte layout come
from the V2 codec shared with REST (`service.v2`), which also decides what a model accepts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from service.errors import InvalidInput
from service.grpc.generated import grpc_service_pb2 as pb
from service.v2 import (
    GRPC_CONTENTS_FIELDS,
    InputTensor,
    OutputTensor,
    check_int_range,
    check_shape,
    numpy_dtype,
    tensor_from_raw,
    tensor_to_raw,
)
from service.v2.inference import OutputRequest

WireInput = pb.ModelInferRequest.InferInputTensor
ParameterValue = bool | int | str | float
CLASSIFICATION = "classification"  # an output's parameter: answer its top N classes
# ModelStreamInferResponse.infer_response: field 2, length-delimited
_STREAM_INFER_RESPONSE_TAG = b"\x12"


def parse_request(message: bytes) -> pb.ModelInferRequest:
    """A ModelInferRequest from its wire bytes; `InvalidInput` when they are not one."""
    try:
        return pb.ModelInferRequest.FromString(message)
    except DecodeError:
        raise InvalidInput(
            "the message is not a valid ModelInferRequest (corrupt wire format)"
        ) from None


def uses_raw_contents(request: pb.ModelInferRequest) -> bool:
    """Whether the request sent raw bytes, so that the response answers in raw bytes too."""
    return len(request.raw_input_contents) > 0


def parameter_values(
    parameters: Mapping[str, pb.InferParameter], where: str
) -> dict[str, ParameterValue]:
    """The values of a `parameters` map (whichever of its oneof fields each sets); a parameter
    with no value is an `InvalidInput` naming it (`where` says whose parameters they are)."""
    values: dict[str, ParameterValue] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is None:
            raise InvalidInput(f"{where} parameter {key!r} has no value")
        values[key] = getattr(parameter, choice)
    return values


def output_requests(request: pb.ModelInferRequest) -> list[OutputRequest]:
    """The requested outputs, each with its `classification` class count (0: the tensor)."""
    requested = []
    for output in request.outputs:
        values = parameter_values(output.parameters, f"output {output.name!r}")
        class_count = values.get(CLASSIFICATION, 0)
        if type(class_count) is not int:
            raise InvalidInput(
                f"output {output.name!r}: parameter {CLASSIFICATION!r} must be an integer "
                f"(int64_param or uint64_param), got {type(class_count).__name__}"
            )
        requested.append(OutputRequest(output.name, class_count))
    return requested


def stream_response(infer_response: bytes) -> bytes:
    """The wire bytes of a ModelStreamInferResponse holding an encoded ModelInferResponse,
    built without parsing it again."""
    return _STREAM_INFER_RESPONSE_TAG + _varint(len(infer_response)) + infer_response


def stream_error(message: str, request_id: str) -> bytes:
    """A ModelStreamInferResponse reporting one failed request (its `id` tells which)."""
    failure = pb.ModelStreamInferResponse(
        error_message=message, infer_response=pb.ModelInferResponse(id=request_id)
    )
    return failure.SerializeToString()


def _varint(value: int) -> bytes:
    encoded = bytearray()
    while value > 0x7F:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


def decode_inputs(request: pb.ModelInferRequest) -> list[InputTensor]:
    """The request's input tensors as arrays; `InvalidInput` names the bad tensor."""
    if not uses_raw_contents(request):
        return [_from_contents(tensor) for tensor in request.inputs]
    raw = request.raw_input_contents
    if len(raw) != len(request.inputs):
        raise InvalidInput(
            f"raw_input_contents holds {len(raw)} entries for {len(request.inputs)} inputs; "
            "it needs one per input, in the order of `inputs`"
        )
    typed = [tensor.name for tensor in request.inputs if tensor.HasField("contents")]
    if typed:
        raise InvalidInput(
            f"input {typed[0]!r} has typed contents but the request uses raw_input_contents; "
            "send every input in one style"
        )
    return [
        InputTensor(t.name, t.datatype, tensor_from_raw(t.name, t.datatype, list(t.shape), data))
        for t, data in zip(request.inputs, raw, strict=True)
    ]


def encode_response(
    response: pb.ModelInferResponse, outputs: list[OutputTensor], *, raw: bool
) -> bytes:
    """The wire bytes of `response` (its header fields set) with `outputs` appended as
    raw_output_contents or typed contents."""
    for output in outputs:
        tensor = response.outputs.add(
            name=output.name, datatype=output.datatype, shape=output.array.shape
        )
        if raw:
            response.raw_output_contents.append(tensor_to_raw(output.array))
        else:
            field = getattr(tensor.contents, GRPC_CONTENTS_FIELDS[output.datatype])
            field.extend(output.array.ravel().tolist())  # faster than iterating the array
    return response.SerializeToString()


def _from_contents(tensor: WireInput) -> InputTensor:
    dtype = numpy_dtype(tensor.datatype)
    shape = check_shape(tensor.name, list(tensor.shape))
    field = GRPC_CONTENTS_FIELDS.get(tensor.datatype)
    if field is None:
        raise InvalidInput(
            f"input {tensor.name!r}: {tensor.datatype} has no typed contents field; "
            "send it in raw_input_contents"
        )
    others = [f.name for f, _ in tensor.contents.ListFields() if f.name != field]
    if others:
        raise InvalidInput(
            f"input {tensor.name!r}: a {tensor.datatype} tensor takes contents.{field}, "
            f"got contents.{others[0]}"
        )
    values = getattr(tensor.contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise InvalidInput(
            f"input {tensor.name!r}: shape {list(shape)} needs {count} values, "
            f"contents.{field} holds {len(values)}"
        )
    return InputTensor(tensor.name, tensor.datatype, _narrow(tensor, values, dtype).reshape(shape))


def _narrow(tensor: WireInput, values: Sequence[Any], dtype: np.dtype) -> np.ndarray:
    """The field's values (e.g. uint32 for UINT8) in the datatype's dtype, range-checked.

    `np.asarray` reads the repeated field in C, one copy and no Python number per value."""
    if dtype == np.dtype(object):  # BYTES
        return np.array(list(values), dtype=object)
    wide = np.asarray(values)
    check_int_range(tensor.name, tensor.datatype, wide)
    return wide.astype(dtype, copy=False)

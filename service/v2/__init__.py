"""KServe Open Inference Protocol (V2): the tensor codec and model-level logic shared by the
REST router (`service.routers.v2`) and the gRPC server."""

from service.v2.inference import (
    SERVER_EXTENSIONS,
    SERVER_NAME,
    InputTensor,
    OutputRequest,
    OutputTensor,
    classify,
    model_input,
    model_metadata,
    model_outputs,
    requested_outputs,
    response_id,
    server_metadata,
)
from service.v2.json_request import InferRequest, RequestedOutput, parse_infer_request
from service.v2.tensors import (
    DATATYPES,
    GRPC_CONTENTS_FIELDS,
    check_int_range,
    check_shape,
    datatype_of,
    numpy_dtype,
    tensor_from_data,
    tensor_from_raw,
    tensor_to_data,
    tensor_to_raw,
)

__all__ = [
    "DATATYPES",
    "GRPC_CONTENTS_FIELDS",
    "SERVER_EXTENSIONS",
    "SERVER_NAME",
    "InferRequest",
    "InputTensor",
    "OutputRequest",
    "OutputTensor",
    "RequestedOutput",
    "check_int_range",
    "check_shape",
    "classify",
    "datatype_of",
    "model_input",
    "model_metadata",
    "model_outputs",
    "numpy_dtype",
    "parse_infer_request",
    "requested_outputs",
    "response_id",
    "server_metadata",
    "tensor_from_data",
    "tensor_from_raw",
    "tensor_to_data",
    "tensor_to_raw",
]

"""Model-level V2 logic shared by REST and gRPC: metadata, request inputs -> model batch,
requested output names (checked before inference), model outputs -> response tensors.
Protocol-specific (de)serialisation stays in the callers.

Inputs: one tensor named as the model input, shape (N, C, H, W) = [-1, *input_shape].
`FP32` (also FP16 / FP64) is the preprocessed, normalised model input; `UINT8` is raw pixels
in [0, 255], normalised here with the model's preprocess mean/std.

Non-finite values: a float input must hold finite numbers only. JSON cannot spell NaN or
infinity (such a body is not valid JSON), and a JSON number too large for its declared datatype
is refused when decoded (`service.v2.tensors`); binary inputs (gRPC raw contents) can carry
NaN/inf, and FP64/FP16 values can overflow the model's float32: `model_input` refuses both with
an `InvalidInput` naming the tensor, for every protocol alike, so no request is answered with
NaN or null outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.config import blockserve_version
from service.errors import InvalidInput, ModelVersionNotFound
from service.repository import ModelHandle

SERVER_NAME = "blockserve"
SERVER_EXTENSIONS: list[str] = []
FLOAT_INPUTS = ("FP32", "FP16", "FP64")
PIXEL_INPUTS = ("UINT8",)


@dataclass(frozen=True)
class InputTensor:
    name: str
    datatype: str
    array: np.ndarray


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    array: np.ndarray


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": blockserve_version(), "extensions": SERVER_EXTENSIONS}


def check_version(handle: ModelHandle, version: str | None) -> None:
    """`ModelVersionNotFound` (404 / NOT_FOUND) unless `version` is empty or served."""
    if version and version != handle.version:
        raise ModelVersionNotFound(handle.name, version, [handle.version])


def model_metadata(handle: ModelHandle) -> dict[str, Any]:
    """The V2 model metadata, batch dimension -1; `parameters` flags untrained weights."""
    loaded = handle.ready()
    return {
        "name": handle.name,
        "versions": [handle.version],
        "platform": handle.platform,
        "inputs": [
            {"name": loaded.input_name, "datatype": "FP32", "shape": [-1, *loaded.input_shape]}
        ],
        "outputs": [
            {"name": loaded.output_name, "datatype": "FP32", "shape": [-1, loaded.num_classes]}
        ],
        "parameters": {
            "trained": handle.trained,
            "arch": handle.config.arch,
            "accepted_input_datatypes": [*FLOAT_INPUTS, *PIXEL_INPUTS],
        },
    }


def model_input(handle: ModelHandle, inputs: Sequence[InputTensor]) -> np.ndarray:
    """The request's tensors as the model's float32 (N, *input_shape) batch."""
    loaded = handle.ready()
    expected = [-1, *loaded.input_shape]
    if len(inputs) != 1:
        names = [tensor.name for tensor in inputs]
        raise InvalidInput(
            f"model {handle.name!r} takes exactly one input {loaded.input_name!r}, got {names}"
        )
    (tensor,) = inputs
    if tensor.name != loaded.input_name:
        raise InvalidInput(
            f"model {handle.name!r} has no input {tensor.name!r}; its input is "
            f"{loaded.input_name!r}"
        )
    array = tensor.array
    if array.ndim != len(expected) or tuple(array.shape[1:]) != loaded.input_shape:
        raise InvalidInput(
            f"input {tensor.name!r}: shape {list(array.shape)} does not match the model's "
            f"{expected}"
        )
    if tensor.datatype in FLOAT_INPUTS:
        return _finite_float32(tensor)
    if tensor.datatype in PIXEL_INPUTS:
        return loaded.preprocess.normalise(array)
    raise InvalidInput(
        f"input {tensor.name!r}: datatype {tensor.datatype} is not accepted; send FP32 "
        f"(normalised model input) or UINT8 (pixels 0-255)"
    )


def _finite_float32(tensor: InputTensor) -> np.ndarray:
    array = tensor.array
    if not np.isfinite(array).all():
        raise InvalidInput(
            f"input {tensor.name!r}: holds NaN or infinite values; the model takes finite "
            "numbers only"
        )
    largest = np.finfo(np.float32).max
    if array.dtype.itemsize > 4 and array.size and (peak := np.abs(array).max()) > largest:
        raise InvalidInput(
            f"input {tensor.name!r}: {tensor.datatype} values up to {peak:g} overflow the "
            f"model's float32 (largest {largest:g})"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def requested_outputs(handle: ModelHandle, requested: Sequence[str]) -> list[str]:
    """The names of the outputs to answer with: the `requested` ones, or every output when
    none is requested. Checked before inference; an unknown name is an `InvalidInput` naming
    it and the model's outputs."""
    loaded = handle.ready()
    available = [loaded.output_name]
    for name in requested:
        if name not in available:
            raise InvalidInput(
                f"model {handle.name!r} has no output {name!r}; outputs: {available}"
            )
    return list(requested) or available


def model_outputs(
    handle: ModelHandle, logits: np.ndarray, names: Sequence[str]
) -> list[OutputTensor]:
    """The response tensors `names` (checked by `requested_outputs`), in that order."""
    outputs = {handle.ready().output_name: logits.astype(np.float32, copy=False)}
    return [OutputTensor(name, "FP32", outputs[name]) for name in names]

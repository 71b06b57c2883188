"""Model-level V2 logic shared by REST and gRPC: metadata, request inputs -> model batch,
requested output names (checked before inference), model outputs -> response tensors.
Protocol-specific (de)serialisation stays in the callers.

Inputs: one tensor named as the model input, shape (N, C, H, W) = [-1, *input_shape].
`FP32` (also FP16 / FP64) is the preprocessed, normalised model input; `UINT8` is raw pixels
in [0, 255], normalised here with the model's preprocess mean/std.

Non-finite values: NaN and infinities in a float input reach the model as sent (as in Triton;
perf_analyzer's random binary data holds them) and come back as the model computes them. Only
finite FP64 values that overflow the model's float32 are refused, with an `InvalidInput` naming
the tensor: that conversion would change the value silently.

Classification (Triton's extension): an output requested with a class count answers, per batch
row, the top `class_count` entries as BYTES `"score:index"` or `"score:index:label"`, the score
written as C's `%f` (as Triton's `std::to_string`).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.config import blockserve_version
from service.errors import InvalidInput
from service.postprocess import top_indices
from service.repository import ModelHandle

SERVER_NAME = "blockserve"
# Triton's extension names, for exactly what both protocols serve (shared memory, sequences,
# trace and logging are not served).
SERVER_EXTENSIONS = [
    "binary_tensor_data",
    "classification",
    "model_configuration",
    "model_repository",
    "statistics",
]
FLOAT_INPUTS = ("FP32", "FP16", "FP64")
PIXEL_INPUTS = ("UINT8",)
# Ids for requests that bring none: unique within this server process, cheap to make.
_RESPONSE_IDS = map("{}-{}".format, itertools.repeat(os.urandom(6).hex()), itertools.count(1))


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


@dataclass(frozen=True)
class OutputRequest:
    """One requested output; `class_count` > 0 asks for its top classes (classification)."""

    name: str
    class_count: int = 0


def response_id(request_id: str | None) -> str:
    """The response's `id`: the request's when it brought one (an empty one included), else
    a fresh one. One rule for REST and gRPC."""
    return request_id if request_id is not None else next(_RESPONSE_IDS)


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": blockserve_version(), "extensions": SERVER_EXTENSIONS}


def model_metadata(handle: ModelHandle, versions: Sequence[str]) -> dict[str, Any]:
    """The V2 model metadata of a version, the model's `versions` listed, batch dimension
    -1; `parameters` flags untrained weights."""
    loaded = handle.ready()
    return {
        "name": handle.name,
        "versions": list(versions),
        "platform": handle.platform,
        "inputs": [
            {"name": loaded.input_name, "datatype": "FP32", "shape": [-1, *loaded.input_shape]}
        ],
        "outputs": [
            {"name": loaded.output_name, "datatype": "FP32", "shape": [-1, loaded.num_classes]}
        ],
        "parameters": {
            "trained": handle.trained,
            "arch": handle.config.arch_name,
            "precision": handle.config.precision,
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
        return _float32(tensor)
    if tensor.datatype in PIXEL_INPUTS:
        return loaded.preprocess.normalise(array)
    raise InvalidInput(
        f"input {tensor.name!r}: datatype {tensor.datatype} is not accepted; send FP32 "
        f"(normalised model input) or UINT8 (pixels 0-255)"
    )


def _float32(tensor: InputTensor) -> np.ndarray:
    array = tensor.array
    largest = float(np.finfo(np.float32).max)
    if array.dtype.itemsize > 4 and array.size and (peak := _finite_peak(array)) > largest:
        raise InvalidInput(
            f"input {tensor.name!r}: {tensor.datatype} values up to {peak:g} overflow the "
            f"model's float32 (largest {largest:g})"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def _finite_peak(array: np.ndarray) -> float:
    magnitudes = np.abs(array)
    return float(magnitudes[np.isfinite(magnitudes)].max(initial=0))


def requested_outputs(
    handle: ModelHandle, requested: Sequence[OutputRequest]
) -> list[OutputRequest]:
    """The outputs to answer with: the `requested` ones, or every output (as tensors) when
    none is requested. Checked before inference; an unknown name or a negative class count is
    an `InvalidInput` naming the output."""
    loaded = handle.ready()
    available = [loaded.output_name]
    for output in requested:
        if output.name not in available:
            raise InvalidInput(
                f"model {handle.name!r} has no output {output.name!r}; outputs: {available}"
            )
        if output.class_count < 0:
            raise InvalidInput(
                f"output {output.name!r}: classification needs a class count of at least 1, "
                f"got {output.class_count}"
            )
    return list(requested) or [OutputRequest(name) for name in available]


def model_outputs(
    handle: ModelHandle, logits: np.ndarray, outputs: Sequence[OutputRequest]
) -> list[OutputTensor]:
    """The response tensors for `outputs` (checked by `requested_outputs`), in that order."""
    loaded = handle.ready()
    arrays = {loaded.output_name: logits.astype(np.float32, copy=False)}
    return [
        OutputTensor(
            output.name, "BYTES", classify(arrays[output.name], output.class_count, loaded.labels)
        )
        if output.class_count
        else OutputTensor(output.name, "FP32", arrays[output.name])
        for output in outputs
    ]


def classify(scores: np.ndarray, class_count: int, labels: Sequence[str]) -> np.ndarray:
    """Per row of `scores` (N, classes): the top `class_count` (at most all) classes as BYTES
    `score:index[:label]`, highest score first (ties: lower index first). Shape (N, k)."""
    order = top_indices(scores, class_count)  # (N, k)
    top = np.take_along_axis(scores, order, axis=1)  # (N, k)
    entries = [
        _class_entry(score, index, labels)
        for score, index in zip(top.ravel().tolist(), order.ravel().tolist(), strict=True)
    ]
    return np.array(entries, dtype=object).reshape(order.shape)


def _class_entry(score: float, index: int, labels: Sequence[str]) -> bytes:
    label = labels[index] if index < len(labels) and labels[index] else None
    text = f"{score:f}:{index}" if label is None else f"{score:f}:{index}:{label}"
    return text.encode()

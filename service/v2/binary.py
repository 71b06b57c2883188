"""The REST side of Triton's binary tensor data extension, and V2 infer response bodies.

A body with binary data is a JSON header followed by the tensors' bytes; the header's length
travels in the `Inference-Header-Content-Length` HTTP header, each binary tensor's size in its
`binary_data_size` parameter (the bytes follow in tensor order). Responses with binary data are
`application/octet-stream`, as Triton answers them.

JSON outputs holding NaN or infinities are written with the NaN, Infinity and -Infinity tokens
(as Triton writes them), not orjson's null; finite outputs stay on orjson.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import orjson

from service.errors import InvalidInput
from service.v2.inference import OutputTensor
from service.v2.tensors import tensor_to_data, tensor_to_raw

HEADER_LENGTH = b"inference-header-content-length"
BINARY_CONTENT_TYPE = b"application/octet-stream"  # of a body with binary data


class ResponseBody(NamedTuple):
    content: bytes
    header_length: int | None  # the JSON header's length when binary data follows it


def header_length(value: bytes | None, body_size: int) -> int | None:
    """The request's `Inference-Header-Content-Length` (None when absent): `InvalidInput`
    unless it is an integer from 1 to the body's size."""
    if value is None:
        return None
    text = value.decode("latin-1").strip()
    if not text.isdigit() or not 0 < int(text) <= body_size:
        raise InvalidInput(
            f"Inference-Header-Content-Length must be the JSON header's length, from 1 to the "
            f"body's {body_size} bytes; got {text[:32]!r}"
        )
    return int(text)


def infer_response(
    envelope: dict[str, Any], outputs: Sequence[OutputTensor], binary: Sequence[bool]
) -> ResponseBody:
    """The response to an infer request: `envelope` (model, version, id) with `outputs`,
    each as binary data where `binary` says so, else as JSON data."""
    described, raw_data = [], []
    for tensor, as_binary in zip(outputs, binary, strict=True):
        description: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.array.shape),
        }
        if as_binary:
            raw = tensor_to_raw(tensor.array)
            description["parameters"] = {"binary_data_size": len(raw)}
            raw_data.append(raw)
        else:
            description["data"] = tensor_to_data(tensor.array)
        described.append(description)
    header = _json({**envelope, "outputs": described}, _all_finite(outputs, binary))
    if not any(raw_data):  # as Triton: no binary bytes, a plain JSON answer
        return ResponseBody(header, None)
    return ResponseBody(b"".join([header, *raw_data]), len(header))


def _all_finite(outputs: Sequence[OutputTensor], binary: Sequence[bool]) -> bool:
    return all(
        as_binary or tensor.array.dtype.kind != "f" or bool(np.isfinite(tensor.array).all())
        for tensor, as_binary in zip(outputs, binary, strict=True)
    )


def _json(document: dict[str, Any], finite: bool) -> bytes:
    if finite:
        return orjson.dumps(document)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

"""Request bodies per body kind, written once to files that the wrk script posts in turn.

Every body carries its own headers (Content-Type included): the Triton binary tensor data
extension needs the length of each body's JSON header in `Inference-Header-Content-Length`.
The listing file holds one body per line: its path, then tab-separated `Name: value` headers.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

MULTIPART_BOUNDARY = "blockserve-bench-7d1f0c"
V2_TENSOR_INPUT = "input"  # the ONNX input name of every server's digits and resnet18 models
V2_BYTES_INPUT = "image"  # Triton's resnet18_jpeg ensemble input
BINARY_HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class Body:
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)


def image_type(blob: bytes) -> str:
    if blob.startswith(b"\x89PNG"):
        return "image/png"
    if blob.startswith(b"\xff\xd8"):
        return "image/jpeg"
    raise ValueError(f"not a PNG or JPEG (starts with {blob[:4]!r})")


def pixel_tensor(blob: bytes) -> np.ndarray:
    """The image as a float32 (1, C, H, W) batch scaled to [-1, 1] (digits' mean 0.5, std 0.5;
    resnet18 gets the same: its weights are random, only the shape matters)."""
    with Image.open(io.BytesIO(blob)) as image:
        pixels = np.asarray(image, np.float32)  # (H, W) or (H, W, C)
    planes = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)  # (C, H, W)
    return (planes[None] / 127.5 - 1.0).astype(np.float32)


def _raw(blob: bytes) -> Body:
    return Body(blob, {"Content-Type": image_type(blob)})


def _base64_json(blob: bytes) -> Body:
    content = json.dumps({"image_data": base64.b64encode(blob).decode("ascii")}).encode()
    return Body(content, {"Content-Type": "application/json"})


def _multipart(blob: bytes) -> Body:
    kind = image_type(blob)
    head = (
        f"--{MULTIPART_BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="content"; filename="image.{kind[6:]}"\r\n'
        f"Content-Type: {kind}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{MULTIPART_BOUNDARY}--\r\n".encode()
    content_type = f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"
    return Body(head + blob + tail, {"Content-Type": content_type})


def _v2_json(blob: bytes) -> Body:
    tensor = pixel_tensor(blob)
    request = {
        "inputs": [
            {
                "name": V2_TENSOR_INPUT,
                "shape": list(tensor.shape),
                "datatype": "FP32",
                "data": [round(float(v), 6) for v in tensor.ravel()],
            }
        ]
    }
    return Body(json.dumps(request).encode(), {"Content-Type": "application/json"})


def _binary(inputs: list[tuple[str, list[int], str, bytes]]) -> Body:
    """Triton's binary tensor data extension: a JSON header naming each input's byte size,
    then the raw tensors back to back; every output comes back binary too. The header is the
    one `tritonclient.http` writes for `infer(model, inputs)` (compact JSON, outputs unnamed,
    `binary_data_output`), so every server gets what its users' stock client sends."""
    header = {
        "inputs": [
            {"name": name, "shape": shape, "datatype": datatype,
             "parameters": {"binary_data_size": len(raw)}}
            for name, shape, datatype, raw in inputs
        ],
        "parameters": {"binary_data_output": True},
    }  # fmt: skip
    head = json.dumps(header, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/octet-stream", BINARY_HEADER_LENGTH: str(len(head))}
    return Body(head + b"".join(raw for *_, raw in inputs), headers)


def _v2_binary(blob: bytes) -> Body:
    tensor = pixel_tensor(blob)
    return _binary([(V2_TENSOR_INPUT, list(tensor.shape), "FP32", tensor.tobytes())])


def _v2_bytes_binary(blob: bytes) -> Body:
    """The encoded image as one BYTES element (4-byte little-endian length, then the bytes)."""
    return _binary([(V2_BYTES_INPUT, [1, 1], "BYTES", struct.pack("<I", len(blob)) + blob)])


BODY_KINDS: dict[str, Callable[[bytes], Body]] = {
    "raw": _raw,
    "base64-json": _base64_json,
    "multipart": _multipart,
    "v2-json": _v2_json,
    "v2-binary": _v2_binary,
    "v2-bytes-binary": _v2_bytes_binary,
}


def write_bodies(images: list[Path], kind: str, directory: Path) -> Path:
    """Body files of `kind` in `directory`; returns the listing file the wrk script reads."""
    if kind not in BODY_KINDS:
        raise ValueError(f"unknown body kind {kind!r}; known: {sorted(BODY_KINDS)}")
    build = BODY_KINDS[kind]
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for image in images:
        body = build(image.read_bytes())
        path = directory / f"{image.stem}.body"
        path.write_bytes(body.content)
        lines.append("\t".join([str(path), *(f"{k}: {v}" for k, v in body.headers.items())]))
    listing = directory / "bodies.txt"
    listing.write_text("".join(f"{line}\n" for line in lines))
    return listing

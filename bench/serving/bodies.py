"""Request bodies per wire format, written once to files that the wrk script posts in turn."""

from __future__ import annotations

import base64
import json
from pathlib import Path

MULTIPART_BOUNDARY = "blockserve-bench-7d1f0c"


def _raw(jpeg: bytes) -> bytes:
    return jpeg


def _base64_json(jpeg: bytes) -> bytes:
    return json.dumps({"image_data": base64.b64encode(jpeg).decode("ascii")}).encode()


def _multipart(jpeg: bytes) -> bytes:
    head = (
        f"--{MULTIPART_BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="content"; filename="image.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + jpeg + f"\r\n--{MULTIPART_BOUNDARY}--\r\n".encode()


# wire format -> (Content-Type, body builder)
FORMATS = {
    "jpeg": ("image/jpeg", _raw),
    "base64-json": ("application/json", _base64_json),
    "multipart": (f"multipart/form-data; boundary={MULTIPART_BOUNDARY}", _multipart),
}


def write_bodies(jpegs: list[Path], wire_format: str, directory: Path) -> tuple[Path, str]:
    """Body files for `wire_format` in `directory`; returns (list file, Content-Type)."""
    if wire_format not in FORMATS:
        raise ValueError(f"unknown wire format {wire_format!r}; known: {sorted(FORMATS)}")
    content_type, build = FORMATS[wire_format]
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for jpeg in jpegs:
        path = directory / f"{jpeg.stem}.body"
        path.write_bytes(build(jpeg.read_bytes()))
        paths.append(path)
    listing = directory / "bodies.txt"
    listing.write_text("".join(f"{path}\n" for path in paths))
    return listing, content_type

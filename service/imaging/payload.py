"""HTTP image payloads -> image blobs: multipart files, a raw image body, or base64 JSON."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

import orjson
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from service.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

SUPPORTED_CONTENT_TYPES = ("multipart/form-data", "image/*", "application/json")


def split_body(content_type: str | None, body: bytes, max_images: int) -> list[bytes]:
    """The image payloads of a request: multipart files, a raw image body, or base64 JSON."""
    if not content_type:
        raise UnsupportedMediaType(
            f"missing Content-Type; send one of {', '.join(SUPPORTED_CONTENT_TYPES)}"
        )
    raw_media_type, options = parse_options_header(content_type)
    media_type = raw_media_type.decode("latin-1").lower()
    if media_type == "multipart/form-data":
        blobs = _multipart_files(body, options.get(b"boundary"))
    elif media_type.startswith("image/"):
        blobs = [body]
    elif media_type == "application/json" or media_type.endswith("+json"):
        blobs = _json_images(body)
    else:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {media_type!r}; send one of "
            f"{', '.join(SUPPORTED_CONTENT_TYPES)}"
        )
    if not blobs:
        raise InvalidInput("the request holds no images")
    if len(blobs) > max_images:
        raise PayloadTooLarge(f"{len(blobs)} images in one request; the limit is {max_images}")
    return blobs


def _multipart_files(body: bytes, boundary: bytes | None) -> list[bytes]:
    if not boundary:
        raise InvalidInput("multipart/form-data Content-Type without a boundary")
    parts: list[tuple[dict[bytes, bytes], bytes]] = []
    header_field, header_value = bytearray(), bytearray()
    headers: dict[bytes, bytes] = {}
    chunks: list[bytes] = []

    def on_part_begin() -> None:
        headers.clear()
        chunks.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunks.append(data[start:end])

    def on_part_end() -> None:
        parts.append((dict(headers), b"".join(chunks)))

    callbacks: MultipartCallbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except MultipartParseError as error:
        raise InvalidInput(f"malformed multipart/form-data body: {error}") from None
    return [data for headers, data in parts if _is_file_part(headers)]


def _is_file_part(headers: dict[bytes, bytes]) -> bool:
    """File parts are images (or octet-stream, which the decoder judges); fields are ignored."""
    _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
    filename = disposition.get(b"filename")
    part_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
    if filename is None and not part_type:
        return False
    if part_type and not part_type.startswith("image/") and part_type != "application/octet-stream":
        name = (filename or disposition.get(b"name", b"?")).decode("utf-8", "replace")
        raise UnsupportedMediaType(
            f"multipart file {name!r} has Content-Type {part_type!r}; send images"
        )
    return True


def _json_images(body: bytes) -> list[bytes]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"body is not valid JSON: {error}") from None
    images = payload.get("images") if isinstance(payload, dict) else None
    if not isinstance(images, list):
        raise InvalidInput('JSON body must be {"images": ["<base64>", ...]}')
    return [_base64_image(index, item) for index, item in enumerate(images)]


def _base64_image(index: int, item: object) -> bytes:
    if not isinstance(item, str):
        raise InvalidInput(f"images[{index}] must be a base64 string, got {type(item).__name__}")
    text = item
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise InvalidInput(f"images[{index}] is a data: URL without ';base64'")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"images[{index}] is not valid base64") from None

"""Image payloads -> model input: body splitting, decoding and preprocessing with Pillow.

Everything here is synchronous CPU work; the routers run it in the decode thread pool.
Bad input raises `InvalidInput` subclasses: corrupt data 400, too many pixels or images 413,
an unsupported content type 415.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import logging
import math
import os
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import orjson
from PIL import Image, ImageOps, UnidentifiedImageError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from models import DefaultCfg
from service.config import PreprocessConfig
from service.errors import CorruptImage, InvalidInput, PayloadTooLarge, UnsupportedMediaType

log = logging.getLogger(__name__)

# The pixel limit is enforced per config in `decode_image`, from the header, before decoding.
Image.MAX_IMAGE_PIXELS = None

SUPPORTED_CONTENT_TYPES = ("multipart/form-data", "image/*", "application/json")
RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "linear": Image.Resampling.BILINEAR,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


@dataclass(frozen=True)
class Preprocess:
    """Resolved preprocessing: shorter side -> `resize`, center `crop` (h, w), normalise."""

    channels: Literal["rgb", "gray"]
    resize: int
    crop: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"

    @classmethod
    def resolve(cls, config: PreprocessConfig, default: DefaultCfg) -> Preprocess:
        """Fill the config's unset fields from the architecture's default cfg."""
        channels_in, *spatial = default.input_size
        if len(spatial) != 2:
            raise ValueError(f"image preprocessing needs a 2-d input, not {default.input_size}")
        crop = config.crop or tuple(spatial)
        crop = (crop, crop) if isinstance(crop, int) else tuple(crop)
        resize = config.resize or math.floor(max(crop) / default.crop_pct)
        channels = config.channels or ("gray" if channels_in == 1 else "rgb")
        count = 1 if channels == "gray" else 3
        mean = tuple(config.mean or _fit(default.mean, count))
        std = tuple(config.std or _fit(default.std, count))
        if len(mean) != count or len(std) != count:
            raise ValueError(f"{channels} input needs {count} mean/std values, got {mean} / {std}")
        interpolation = config.interpolation or default.interpolation
        return cls(channels, resize, crop, mean, std, interpolation)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1 if self.channels == "gray" else 3, *self.crop)

    def normalise(self, pixels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Pixels 0..255 (..., C, H, W) -> float32 model input ``(pixels / 255 - mean) / std``,
        computed as one multiply-add and written into `out` when given."""
        scale, shift = self._affine
        out = np.multiply(pixels, scale, out=out, dtype=np.float32)
        return np.add(out, shift, out=out)

    @functools.cached_property
    def _affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(x / 255 - mean) / std as x * scale + shift, float32 (C, 1, 1), built once."""
        mean = np.asarray(self.mean, np.float64).reshape(-1, 1, 1)
        std = np.asarray(self.std, np.float64).reshape(-1, 1, 1)
        return (1 / (255 * std)).astype(np.float32), (-mean / std).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)


def _fit(values: tuple[float, ...], count: int) -> tuple[float, ...]:
    """Per-channel stats for `count` channels: average RGB stats for gray, repeat gray for RGB."""
    if len(values) == count:
        return values
    if count == 1:
        return (sum(values) / len(values),)
    return values * count if len(values) == 1 else values


def decode_image(data: bytes, preprocess: Preprocess, max_pixels: int, out: np.ndarray) -> None:
    """Decode one image and write it preprocessed into `out` (C, H, W) float32."""
    if not data:
        raise CorruptImage("empty image data")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise CorruptImage("cannot identify image data: corrupt, or not PNG/JPEG/...") from None
    except _DECODE_ERRORS as error:
        raise CorruptImage(f"corrupt image: {error}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
        )
    mode = "L" if preprocess.channels == "gray" else "RGB"
    try:
        if image.format == "JPEG":
            image.draft(mode, (preprocess.resize, preprocess.resize))  # DCT-domain downscale
        ImageOps.exif_transpose(image, in_place=True)  # no copy when upright
        image = _to_mode(image, mode)
        image = _resize_and_crop(image, preprocess)
    except _DECODE_ERRORS as error:
        raise CorruptImage(f"corrupt {image.format or 'image'} data: {error}") from None
    pixels = np.asarray(image).reshape(*preprocess.crop, -1)  # (H, W, C) uint8
    preprocess.normalise(pixels.transpose(2, 0, 1), out=out)  # (C, H, W)


def decode_pool(threads: int, niceness: int) -> ThreadPoolExecutor:
    """The decode threads, `niceness` steps below the threads that create them.

    An ONNX Runtime run's threads meet at a barrier after every operator, so a decoder that
    preempts one of them stalls them all; at lower priority, decoding takes the cycles the
    engine leaves instead. Nothing changes while the cores are otherwise idle.
    """
    return ThreadPoolExecutor(
        threads, thread_name_prefix="decode", initializer=_lower_priority, initargs=(niceness,)
    )


def _lower_priority(niceness: int) -> None:
    if not niceness or sys.platform != "linux":  # Linux applies PRIO_PROCESS to one thread id
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + niceness)
    except OSError as error:  # a sandbox that forbids it: decode at the usual priority
        log.warning("decode thread keeps its priority: setpriority failed: %s", error)


def decode_images(blobs: list[bytes], preprocess: Preprocess, max_pixels: int) -> np.ndarray:
    """Decode a request's images into one (N, C, H, W) float32 batch; errors name the image."""
    batch = np.empty((len(blobs), *preprocess.input_shape), np.float32)
    for index, data in enumerate(blobs):
        try:
            decode_image(data, preprocess, max_pixels, batch[index])
        except InvalidInput as error:
            if len(blobs) > 1:
                error.message = f"image {index}: {error.message}"
                error.args = (error.message,)
            raise
    return batch


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        scale = 255.0 / 65535.0 if image.mode != "F" else 255.0
        pixels = np.clip(np.asarray(image, np.float32) * scale, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels, "L")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return image.convert(mode) if image.mode != mode else image


def _resize_and_crop(image: Image.Image, preprocess: Preprocess) -> Image.Image:
    """Shorter side -> `resize`, then the center `crop`, as one resampling of the source box."""
    width, height = image.size
    crop_h, crop_w = preprocess.crop
    scale = preprocess.resize / min(width, height)
    box_w, box_h = crop_w / scale, crop_h / scale
    left, top = (width - box_w) / 2, (height - box_h) / 2
    if (width, height) == (crop_w, crop_h) and scale == 1:
        return image
    resample = RESAMPLING.get(preprocess.interpolation, Image.Resampling.BILINEAR)
    box = (left, top, left + box_w, top + box_h)
    return image.resize((crop_w, crop_h), resample, box=box, reducing_gap=3.0)


def split_body(content_type: str | None, body: bytes, max_images: int) -> list[bytes]:
    """The image payloads of a request: multipart files, a raw image body, or base64 JSON."""
    if not content_type:
        raise UnsupportedMediaType(
            f"missing Content-Type; send one of {', '.join(SUPPORTED_CONTENT_TYPES)}"
        )
    media_type, options = parse_options_header(content_type)
    media_type = media_type.decode("latin-1").lower()
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

    callbacks = {
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

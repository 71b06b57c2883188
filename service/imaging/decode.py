"""Image blobs -> preprocessed model input, with Pillow. Synchronous CPU work.

Bad input raises `InvalidInput` subclasses: corrupt data 400, too many pixels 413.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.config import DEFAULT_IMAGE_FORMATS
from service.errors import CorruptImage, InvalidInput, PayloadTooLarge
from service.imaging.preprocess import Preprocess

log = logging.getLogger(__name__)
T = TypeVar("T")

# The pixel limit is enforced per config in `decode_image`, from the header, before decoding.
Image.MAX_IMAGE_PIXELS = None

RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "linear": Image.Resampling.BILINEAR,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
# Decoder exceptions whose text describes the data; any other exception from a decoder is
# still the image's fault (a 400), answered by its type only.
_DATA_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def open_image(data: bytes, formats: Sequence[str], max_pixels: int) -> Image.Image:
    """Read one image's header, trying only the decoders in `formats` (Pillow names), and
    check its pixel count before anything is decoded."""
    if not data:
        raise CorruptImage("empty image data")
    try:
        image = Image.open(io.BytesIO(data), formats=tuple(formats))
    except UnidentifiedImageError:
        raise CorruptImage(
            f"cannot identify image data: corrupt, or not one of the accepted formats "
            f"({', '.join(formats)})"
        ) from None
    except Exception as error:
        raise _corrupt(None, error) from None
    width, height = image.size
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
        )
    return image


def preprocess_image(image: Image.Image, preprocess: Preprocess, out: np.ndarray) -> None:
    """Decode an opened image and write it preprocessed into `out` (C, H, W) float32."""
    mode = "L" if preprocess.channels == "gray" else "RGB"
    try:
        if image.format == "JPEG":
            image.draft(mode, (preprocess.resize, preprocess.resize))  # DCT-domain downscale
        ImageOps.exif_transpose(image, in_place=True)  # no copy when upright
        image = _to_mode(image, mode)
        image = _resize_and_crop(image, preprocess)
        pixels = np.asarray(image).reshape(*preprocess.crop, -1)  # (H, W, C) uint8
    except Exception as error:
        raise _corrupt(image.format, error) from None
    preprocess.normalise(pixels.transpose(2, 0, 1), out=out)  # (C, H, W)


def decode_image(
    data: bytes,
    preprocess: Preprocess,
    max_pixels: int,
    out: np.ndarray,
    formats: Sequence[str] = DEFAULT_IMAGE_FORMATS,
) -> None:
    """Decode one image and write it preprocessed into `out` (C, H, W) float32."""
    preprocess_image(open_image(data, formats, max_pixels), preprocess, out)


def open_images(blobs: list[bytes], formats: Sequence[str], max_pixels: int) -> list[Image.Image]:
    """Every image's header, read and checked (see `open_image`); errors name the image."""
    return [_naming_image(index, len(blobs), open_image, data, formats, max_pixels)
            for index, data in enumerate(blobs)]  # fmt: skip


def preprocess_images(images: list[Image.Image], preprocess: Preprocess) -> np.ndarray:
    """Opened images -> one (N, C, H, W) float32 batch; errors name the image."""
    batch = np.empty((len(images), *preprocess.input_shape), np.float32)
    for index, image in enumerate(images):
        _naming_image(index, len(images), preprocess_image, image, preprocess, batch[index])
    return batch


def decode_images(
    blobs: list[bytes],
    preprocess: Preprocess,
    max_pixels: int,
    formats: Sequence[str] = DEFAULT_IMAGE_FORMATS,
) -> np.ndarray:
    """Decode a request's images into one (N, C, H, W) float32 batch; errors name the image."""
    return preprocess_images(open_images(blobs, formats, max_pixels), preprocess)


def _naming_image(index: int, count: int, step: Callable[..., T], *args: Any) -> T:
    try:
        return step(*args)
    except InvalidInput as error:
        if count > 1:
            error.message = f"image {index}: {error.message}"
            error.args = (error.message,)
        raise


def _corrupt(image_format: str | None, error: Exception) -> CorruptImage:
    what = f"{image_format} data" if image_format else "image"
    if isinstance(error, _DATA_ERRORS):
        return CorruptImage(f"corrupt {what}: {error}")
    log.info("image decoder raised %s", type(error).__name__, exc_info=error)
    return CorruptImage(f"corrupt {what}: the decoder failed ({type(error).__name__})")


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

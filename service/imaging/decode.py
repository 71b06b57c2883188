"""Image blobs -> preprocessed model input, with Pillow. Synchronous CPU work.

Bad input raises `InvalidInput` subclasses: corrupt data 400, too many pixels 413.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import CorruptImage, InvalidInput, PayloadTooLarge
from service.imaging.preprocess import Preprocess

# The pixel limit is enforced per config in `decode_image`, from the header, before decoding.
Image.MAX_IMAGE_PIXELS = None

RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "linear": Image.Resampling.BILINEAR,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


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

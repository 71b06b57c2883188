"""Images the container suite sends: held-out digits as PNG files, and bad inputs."""

from __future__ import annotations

import base64
import io
from functools import cache

import numpy as np
from PIL import Image

from models.digits import load_digits_split


@cache
def held_out_digits() -> tuple[list[bytes], list[int]]:
    """The digits split's held-out images as 8×8 grayscale PNG files, with their labels."""
    split = load_digits_split()
    pngs = [png_bytes(Image.fromarray(pixels, mode="L")) for pixels in split.test_images]
    return pngs, [int(label) for label in split.test_labels]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def noise_png(size: int, seed: int = 0) -> bytes:
    """A random RGB PNG of size×size pixels (incompressible, so decoding has real work)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return png_bytes(Image.fromarray(pixels, mode="RGB"))


def pixel_bomb_png(width: int, height: int) -> bytes:
    """A tiny file that decodes to width×height pixels (a decompression bomb)."""
    return png_bytes(Image.new("L", (width, height)))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

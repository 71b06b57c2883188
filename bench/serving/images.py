"""Synthetic but natural-looking JPEGs: smooth lighting, textured shapes, sensor noise.

Flat or pure-noise images compress unrealistically well or badly; these land near a photo's
size per pixel at quality 90, so decode cost resembles a real upload.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# name -> (side, Pillow mode): photos for resnet18, small gray images for the digits model
CORPORA = {"rgb224": (224, "RGB"), "gray32": (32, "L")}


def natural_image(rng: np.random.Generator, size: int, mode: str = "RGB") -> Image.Image:
    """One image: a low-frequency colour field, blurred shapes, mid-frequency texture, noise."""
    field = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)  # (4, 4, C) coarse lighting
    image = Image.fromarray(field, "RGB").resize((size, size), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(3, 8)):
        x0, y0 = rng.uniform(-0.2, 0.9, 2) * size
        w, h = rng.uniform(0.1, 0.6, 2) * size
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = rng.choice(["ellipse", "rectangle", "polygon"])
        if shape == "polygon":
            points = [tuple(p) for p in rng.uniform(0, size, (int(rng.integers(3, 7)), 2))]
            draw.polygon(points, fill=colour)
        else:
            getattr(draw, shape)((x0, y0, x0 + w, y0 + h), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.5, 1.5))))
    texture = rng.normal(0, 18, (max(size // 8, 1), max(size // 8, 1))).astype(np.float32)
    texture = Image.fromarray(texture, "F").resize((size, size), Image.Resampling.BILINEAR)
    texture = np.asarray(texture)  # (H, W) mid-frequency grain
    noise = rng.normal(0, 6, (size, size, 3))
    pixels = np.asarray(image, np.float32) + texture[..., None] + noise  # (H, W, C)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return image.convert(mode) if mode != "RGB" else image


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_corpus(directory: Path, corpus: str, count: int, *, seed: int = 0) -> list[Path]:
    """`count` seeded JPEGs of the `corpus` kind in `directory`."""
    size, mode = CORPORA[corpus]
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = directory / f"{corpus}_{index:03d}.jpg"
        path.write_bytes(jpeg_bytes(natural_image(rng, size, mode)))
        paths.append(path)
    return paths

"""Synthetic but natural-looking images: smooth lighting, textured shapes, sensor noise.

Flat or pure-noise images compress unrealistically well or badly; these land near a photo's
size per pixel at JPEG quality 90, so decode cost resembles a real upload.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


@dataclass(frozen=True)
class Corpus:
    width: int
    height: int
    mode: str  # Pillow mode: "RGB" or "L"
    format: str  # Pillow format: "JPEG" or "PNG"

    @property
    def suffix(self) -> str:
        return {"JPEG": ".jpg", "PNG": ".png"}[self.format]


CORPORA = {
    "rgb224": Corpus(224, 224, "RGB", "JPEG"),  # resnet18 at its input size
    "rgb451x300": Corpus(451, 300, "RGB", "JPEG"),  # a photo the server must resize and crop
    "gray8": Corpus(8, 8, "L", "PNG"),  # the digits model's input, lossless
}


def natural_image(rng: np.random.Generator, width: int, height: int, mode: str) -> Image.Image:
    """One image: a low-frequency colour field, blurred shapes, mid-frequency texture, noise."""
    field = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)  # (4, 4, C) coarse lighting
    image = Image.fromarray(field, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(3, 8)):
        x0, y0 = rng.uniform(-0.2, 0.9, 2) * (width, height)
        w, h = rng.uniform(0.1, 0.6, 2) * (width, height)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = rng.choice(["ellipse", "rectangle", "polygon"])
        if shape == "polygon":
            corners = rng.uniform(0, 1, (int(rng.integers(3, 7)), 2)) * (width, height)
            draw.polygon([tuple(p) for p in corners], fill=colour)
        else:
            getattr(draw, shape)((x0, y0, x0 + w, y0 + h), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.5, 1.5))))
    grain = rng.normal(0, 18, (max(height // 8, 1), max(width // 8, 1))).astype(np.float32)
    grain = np.asarray(Image.fromarray(grain, "F").resize((width, height)))  # (H, W)
    noise = rng.normal(0, 6, (height, width, 3))
    pixels = np.asarray(image, np.float32) + grain[..., None] + noise  # (H, W, C)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return image.convert(mode) if mode != "RGB" else image


def encode(image: Image.Image, image_format: str, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(
        buffer, format=image_format, **({"quality": quality} if image_format == "JPEG" else {})
    )
    return buffer.getvalue()


def write_corpus(directory: Path, corpus: str, count: int, *, seed: int = 0) -> list[Path]:
    """`count` seeded images of the `corpus` kind in `directory`."""
    kind = CORPORA[corpus]
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = directory / f"{corpus}_{index:03d}{kind.suffix}"
        image = natural_image(rng, kind.width, kind.height, kind.mode)
        path.write_bytes(encode(image, kind.format))
        paths.append(path)
    return paths

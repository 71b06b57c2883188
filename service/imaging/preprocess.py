"""Resolved preprocessing of one model: resize, center crop, normalisation constants."""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from models import DefaultCfg
from service.config import PreprocessConfig


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

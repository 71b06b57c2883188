"""Resolved preprocessing of one model: resize, center crop, normalisation constants.

The bundle's manifest holds the preprocessing the model was exported with (the default cfg at
the exported input size); the config's set fields override it. Only the crop and the channels
change the exported input size, so they are resolved before the export (`export_input_size`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from models import DefaultCfg
from models.preprocessing import CHANNEL_COUNTS
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
    def resolve(cls, config: PreprocessConfig, exported: Mapping[str, Any]) -> Preprocess:
        """The config's set fields over the bundle manifest's `preprocess` (`exported`)."""
        if exported["crop"] is None or exported["channels"] is None:
            raise ValueError("image preprocessing needs a model whose input is a gray or RGB image")
        channels = exported["channels"]
        count = CHANNEL_COUNTS[channels]
        mean = tuple(config.mean or exported["mean"])
        std = tuple(config.std or exported["std"])
        if len(mean) != count or len(std) != count:
            raise ValueError(f"{channels} input needs {count} mean/std values, got {mean} / {std}")
        return cls(
            channels=channels,
            resize=config.resize or exported["resize"],
            crop=tuple(exported["crop"]),
            mean=mean,
            std=std,
            interpolation=config.interpolation or exported["interpolation"],
        )

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


def export_input_size(
    config: PreprocessConfig, default: DefaultCfg, in_chans: int
) -> tuple[int, int, int]:
    """The (C, H, W) a model is exported at: the config's channels and crop, else the model's
    input channels and the default cfg's spatial size."""
    spatial = default.input_size[1:]
    if len(spatial) != 2:
        raise ValueError(f"image preprocessing needs a 2-d input, not {default.input_size}")
    crop = config.crop or (spatial[0], spatial[1])
    height, width = (crop, crop) if isinstance(crop, int) else crop
    channels = CHANNEL_COUNTS[config.channels] if config.channels else in_chans
    return (channels, height, width)

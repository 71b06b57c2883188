"""What a model expects around its tensors: the preprocessing and class labels a bundle records.

The one implementation of the resize rule, of fitting per-channel statistics to a channel count
and of fitting labels to a class count; the export pipeline and the server both use these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from models.default_cfgs import DefaultCfg

CHANNEL_COUNTS = {"gray": 1, "rgb": 3}
CHANNEL_NAMES = {count: name for name, count in CHANNEL_COUNTS.items()}


def resize_for_crop(crop: Sequence[int], crop_pct: float) -> int:
    """Shorter side to resize to before a center `crop` (h, w): the larger crop side divided by
    `crop_pct`, so that both crop sides fit whatever the aspect ratio."""
    return math.floor(max(crop) / crop_pct)


def fit_channel_stats(values: Sequence[float], count: int) -> tuple[float, ...]:
    """Per-channel mean or std for `count` channels: RGB stats averaged for gray, gray stats
    repeated for RGB; anything else is returned as given (and rejected by the caller)."""
    values = tuple(values)
    if len(values) == count:
        return values
    if count == 1:
        return (sum(values) / len(values),)
    return values * count if len(values) == 1 else values


def default_preprocess(cfg: DefaultCfg, input_shape: Sequence[int]) -> dict[str, Any]:
    """Resize / crop / normalisation of a model from its default cfg, at `input_shape`
    (C, *spatial). `resize`, `crop` and `channels` are None for inputs that are not images."""
    channels, *spatial = input_shape
    images = len(spatial) == 2
    return {
        "resize": resize_for_crop(spatial, cfg.crop_pct) if images else None,
        "crop": list(spatial) if images else None,
        "interpolation": cfg.interpolation,
        "mean": list(fit_channel_stats(cfg.mean, channels)),
        "std": list(fit_channel_stats(cfg.std, channels)),
        "channels": CHANNEL_NAMES.get(channels) if images else None,
    }


def default_labels(cfg: DefaultCfg, num_classes: int) -> list[str] | None:
    """The default cfg's labels, unless overrides changed the class count."""
    labels = cfg.labels
    return list(labels) if labels is not None and len(labels) == num_classes else None


def check_labels(labels: Sequence[str], num_classes: int) -> list[str]:
    """`labels` as a list, or ValueError when their count is not the model's class count."""
    if len(labels) != num_classes:
        raise ValueError(f"{len(labels)} labels configured for a model with {num_classes} classes")
    return list(labels)


def served_labels(
    configured: Sequence[str] | None, exported: Sequence[str] | None, num_classes: int
) -> list[str]:
    """The configured labels, else the bundle's, else the class indices as strings."""
    if configured is not None:
        return check_labels(configured, num_classes)
    if exported is not None:
        return check_labels(exported, num_classes)
    return [str(index) for index in range(num_classes)]

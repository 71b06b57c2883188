"""torchvision → blockserve state-dict conversion.

Mapping rule: **positional, checked per tensor.** For every torchvision-equivalent zoo model
the blockserve network registers its parameters and buffers in exactly torchvision's order
(stem, stage by stage, block layers in forward order with the shortcut last, ConvNeXt layer
scale first in its block, head). `from_torchvision` therefore pairs the i-th torchvision entry
with the i-th blockserve entry and checks each pair:

- the leaf names agree (`weight`, `bias`, `running_mean`, `running_var`,
  `num_batches_tracked`, `layer_scale`), so a norm's weight never lands in a bias;
- the shapes agree exactly (torchvision and blockserve both use ``nn.Linear`` and
  ``(C, 1, 1)`` layer scales, so no reshaping is ever needed);
- both sides hold the same number of entries.

Any violation raises `ConversionError` naming both keys. Positional mapping with these checks
needs no per-family rename tables, and it fails loudly instead of silently when either side's
layout changes; the parity test (tests/models/test_torchvision_parity.py) proves the outputs
equal torchvision's on a committed fixture.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from models.builder import build_network
from models.registry import model_spec
from models.torchvision_names import TORCHVISION_MODELS

__all__ = ["TORCHVISION_MODELS", "ConversionError", "from_torchvision"]


class ConversionError(ValueError):
    """A torchvision state dict that does not fit the blockserve model."""


def target_shapes(name: str, **overrides: Any) -> dict[str, torch.Size]:
    """Ordered ``{key: shape}`` of blockserve model `name`, built on the meta device."""
    with torch.device("meta"):
        model = build_network(model_spec(name, **overrides))
    return {key: tensor.shape for key, tensor in model.state_dict().items()}


def from_torchvision(
    name: str, state_dict: Mapping[str, torch.Tensor], **overrides: Any
) -> dict[str, torch.Tensor]:
    """Rename torchvision model `name`'s `state_dict` to blockserve keys (tensors shared).

    `overrides` go to `model_spec` (e.g. ``num_classes=10`` for a fine-tuned checkpoint).
    """
    if name not in TORCHVISION_MODELS:
        raise KeyError(
            f"{name!r} has no torchvision counterpart; convertible: {', '.join(TORCHVISION_MODELS)}"
        )
    targets = target_shapes(name, **overrides)
    if len(state_dict) != len(targets):
        raise ConversionError(
            f"{name}: torchvision state dict has {len(state_dict)} entries, "
            f"the blockserve model has {len(targets)}"
        )
    converted = {}
    for (tv_key, tensor), (key, shape) in zip(state_dict.items(), targets.items(), strict=True):
        tv_leaf, leaf = tv_key.rsplit(".", 1)[-1], key.rsplit(".", 1)[-1]
        if tv_leaf != leaf:
            raise ConversionError(f"{name}: {tv_key!r} ({tv_leaf}) lines up with {key!r} ({leaf})")
        if tensor.shape != shape:
            raise ConversionError(
                f"{name}: {tv_key!r} has shape {list(tensor.shape)}, {key!r} needs {list(shape)}"
            )
        converted[key] = tensor
    return converted

"""Layers by name for 1d / 2d / 3d networks.

Blocks never pick a normalization or activation class themselves: they receive a name (or a
factory) and resolve it once through this module, so one block definition serves every
dimension and every norm/act choice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

NORMALIZERS = ("batch", "inst", "pinst", "layer", "null")
ACTIVATORS = ("relu", "prelu", "gelu", "silu", "relu6", "hardswish", "null")
DIMS = (1, 2, 3)

LayerFactory = Callable[[int], nn.Module]
"""Builds a layer for a given channel count, e.g. ``norm(64)``."""

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCE_NORM = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
_AVG_POOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_UPSAMPLE_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def check_dims(dims: int) -> int:
    """Return `dims` if it is 1, 2 or 3, else raise ValueError."""
    if isinstance(dims, bool) or dims not in DIMS:
        raise ValueError(f"dims must be one of {DIMS}, got {dims!r}")
    return dims


def check_choice(kind: str, value: str, allowed: tuple[str, ...]) -> str:
    """Return `value` if it is one of `allowed`, else raise ValueError listing them."""
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; allowed values: {', '.join(allowed)}")
    return value


def conv_type(dims: int) -> type[nn.Module]:
    """nn.Conv1d / nn.Conv2d / nn.Conv3d."""
    return _CONV[check_dims(dims)]


def adaptive_avg_pool_type(dims: int) -> type[nn.Module]:
    """nn.AdaptiveAvgPool1d / 2d / 3d."""
    return _AVG_POOL[check_dims(dims)]


def upsample_mode(dims: int) -> str:
    """Interpolation mode of `dims` spatial dims: "linear" / "bilinear" / "trilinear"."""
    return _UPSAMPLE_MODE[check_dims(dims)]


class LayerNormNd(nn.LayerNorm):
    """LayerNorm over the channel dim of a channels-first tensor (B, C, *spatial)."""

    def __init__(self, num_channels: int, eps: float = 1e-5, elementwise_affine: bool = True):
        super().__init__(num_channels, eps=eps, elementwise_affine=elementwise_affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = x.dim() - 1  # positive axes: ONNX Transpose rejects negative perms
        x = x.movedim(1, last)  # (B, *spatial, C)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.movedim(last, 1)  # (B, C, *spatial)


def make_norm(name: str, channels: int, dims: int, **kwargs: Any) -> nn.Module:
    """Normalization layer `name` over `channels` for `dims` spatial dims.

    `kwargs` go to the torch constructor (e.g. ``eps``, ``momentum``).
    """
    return norm_factory(name, dims, **kwargs)(channels)


def norm_factory(name: str, dims: int, **kwargs: Any) -> LayerFactory:
    """Resolve a normalizer name once into a ``channels -> nn.Module`` factory."""
    check_choice("normalizer", name, NORMALIZERS)
    check_dims(dims)
    if name == "batch":
        return functools.partial(_BATCH_NORM[dims], **kwargs)
    if name in ("inst", "pinst"):
        return functools.partial(_INSTANCE_NORM[dims], affine=name == "pinst", **kwargs)
    if name == "layer":
        return functools.partial(LayerNormNd, **kwargs)
    return _identity


def make_act(name: str, channels: int = 1) -> nn.Module:
    """Activation layer `name`; `prelu` learns one slope per channel."""
    return act_factory(name)(channels)


def act_factory(name: str) -> LayerFactory:
    """Resolve an activator name once into a ``channels -> nn.Module`` factory."""
    check_choice("activator", name, ACTIVATORS)
    if name == "prelu":
        return _prelu
    return _ACT_TYPES[name]


def _prelu(channels: int) -> nn.Module:
    return nn.PReLU(num_parameters=channels)


def _identity(channels: int) -> nn.Module:
    return nn.Identity()


def _parameter_free(act_type: type[nn.Module]) -> LayerFactory:
    return lambda channels: act_type()


_ACT_TYPES: dict[str, LayerFactory] = {
    "relu": _parameter_free(nn.ReLU),
    "gelu": _parameter_free(nn.GELU),
    "silu": _parameter_free(nn.SiLU),
    "relu6": _parameter_free(nn.ReLU6),
    "hardswish": _parameter_free(nn.Hardswish),
    "null": _identity,
}


def resolve_norm(
    norm_layer: str | LayerFactory, dims: int, norm_kwargs: dict | None = None
) -> LayerFactory:
    """A normalizer given by name (resolved for `dims`) or already as a factory."""
    if isinstance(norm_layer, str):
        return norm_factory(norm_layer, dims, **(norm_kwargs or {}))
    if norm_kwargs:
        return functools.partial(norm_layer, **norm_kwargs)
    return norm_layer


def resolve_act(act_layer: str | LayerFactory) -> LayerFactory:
    """An activator given by name or already as a factory."""
    return act_factory(act_layer) if isinstance(act_layer, str) else act_layer


def is_null(layer: nn.Module) -> bool:
    """True for the placeholder a `null` normalizer/activator resolves to."""
    return type(layer) is nn.Identity


class DropPath(nn.Module):
    """Stochastic depth in "row" mode: drop whole samples of a residual branch.

    In training each sample of the batch is zeroed with probability `p` and the survivors are
    scaled by ``1 / (1 - p)``; in eval mode (or with ``p == 0``) it is the identity.
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"drop path probability must be in [0, 1], got {p!r}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask_shape = [x.shape[0]] + [1] * (x.dim() - 1)  # (B, 1, ..., 1)
        mask = x.new_empty(mask_shape).bernoulli_(keep)
        if keep > 0.0:
            mask = mask / keep
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"

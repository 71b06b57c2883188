"""Building pieces shared by the block families: conv-norm-act, squeeze-excitation, the
residual merge and the 1d/2d/3d bindings."""

from __future__ import annotations

import inspect
from typing import ClassVar

import torch
from torch import nn

from models.layers import (
    DIMS,
    DropPath,
    LayerFactory,
    act_factory,
    adaptive_avg_pool_type,
    conv_type,
    is_null,
)


def check_channels(**channels: int) -> None:
    """Raise ValueError unless every given channel count is a positive int."""
    for name, value in channels.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_stride(stride: int) -> int:
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    return stride


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed values: {', '.join(allowed)}")
    return value


def has_norm(norm: LayerFactory) -> bool:
    """False when the norm factory resolves to the `null` placeholder."""
    return not is_null(norm(1))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round `value` to a multiple of `divisor`, never below 90 % of it (torchvision rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvNormAct(nn.Sequential):
    """conv → norm → act, children named `conv`, `norm`, `act`.

    A `null` norm or act is left out; the conv has a bias exactly when there is no norm.
    Padding keeps the size ("same") for odd kernels: ``(kernel_size - 1) // 2 * dilation``.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        *,
        dims: int,
        norm: LayerFactory,
        act: LayerFactory | None = None,
        groups: int = 1,
        dilation: int = 1,
    ):
        super().__init__()
        norm_layer = norm(out_chs)
        self.conv = conv_type(dims)(
            in_chs,
            out_chs,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2 * dilation,
            dilation=dilation,
            groups=groups,
            bias=is_null(norm_layer),
        )
        if not is_null(norm_layer):
            self.norm = norm_layer
        act_layer = act(out_chs) if act is not None else nn.Identity()
        if not is_null(act_layer):
            self.act = act_layer


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (torchvision layout): pool → 1x1 conv → act → 1x1 conv → gate."""

    def __init__(self, channels: int, squeeze_chs: int, *, dims: int, act_layer: str = "silu"):
        super().__init__()
        conv = conv_type(dims)
        self.avgpool = adaptive_avg_pool_type(dims)(1)
        self.fc1 = conv(channels, squeeze_chs, 1)
        self.activation = act_factory(act_layer)(squeeze_chs)
        self.fc2 = conv(squeeze_chs, channels, 1)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, *S)
        scale = self.avgpool(x)  # (B, C, 1, ...)
        scale = self.fc2(self.activation(self.fc1(scale)))
        return x * self.scale_activation(scale)


class ResidualBlock(nn.Module):
    """Base of every residual block: ``branch(x) (→ drop path) + shortcut(x)``.

    Subclasses register, in forward order, the residual-branch layers, then `drop_path` (only
    when its probability is > 0 and there is a residual path) and `shortcut` (nn.Identity, a
    projection, or None when the block has no residual path); a layer applied after the merge
    is named `post_act`. Two blocks deviate from "branch and shortcut both read the input":
    a ConvNeXt block that changes shape starts with `downsample`, whose output feeds both;
    a pre-activation block's projection shortcut reads the output of `act1`.
    """

    def add_residual(self, shortcut: nn.Module | None, drop_path: float) -> None:
        """Register `drop_path` and `shortcut` after the branch layers."""
        if not 0.0 <= drop_path <= 1.0:
            raise ValueError(f"drop_path must be in [0, 1], got {drop_path!r}")
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 and shortcut is not None else None
        self.shortcut = shortcut

    def merge(self, out: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.drop_path is not None:
            out = self.drop_path(out)
        return out + skip


class FixedDims:
    """Mixin of a 1d/2d/3d binding: calls the N-d block with the binding's `dims`."""

    dims: ClassVar[int]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, dims=self.dims, **kwargs)


def bind_dims(
    block: type[nn.Module], name: str | None = None, init: type = FixedDims
) -> tuple[type[nn.Module], ...]:
    """The 1d/2d/3d classes of an N-d block: ``BasicBlock1d, BasicBlock2d, BasicBlock3d``.

    `init` is the mixin providing the bindings' constructor (it forwards ``dims``).
    Call it at module level of the defining module so the classes pickle by name.
    """
    base_name = name or block.__name__
    bindings = []
    for dims in DIMS:
        class_name = f"{base_name}{dims}d"
        attrs = {
            "dims": dims,
            "__module__": block.__module__,
            "__qualname__": class_name,
            "__doc__": f"{block.__name__} for {dims}d inputs (B, C, {_spatial(dims)}).",
        }
        if init is FixedDims:
            attrs["__signature__"] = _signature_without_dims(block)
        bindings.append(type(class_name, (init, block), attrs))
    return tuple(bindings)


def _signature_without_dims(block: type[nn.Module]) -> inspect.Signature:
    """The N-d constructor's signature minus `self` and `dims`, for introspection."""
    params = list(inspect.signature(block.__init__).parameters.values())[1:]
    return inspect.Signature([p for p in params if p.name != "dims"])


def _spatial(dims: int) -> str:
    return ", ".join(("L",) if dims == 1 else ("H", "W") if dims == 2 else ("D", "H", "W"))

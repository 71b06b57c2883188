"""Building pieces shared by the block families: argument checks, norm/act resolved once
(`BlockLayers`), "same" convs, conv-norm-act, squeeze-excitation, the ConvNeXt downsampling,
the residual merge and the 1d/2d/3d bindings."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, ClassVar

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
    resolve_act,
    resolve_norm,
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


def check_block_args(in_chs: int, out_chs: int, stride: int, **more_channels: int) -> None:
    """The checks every stage block starts with: positive channel counts and stride."""
    check_channels(in_chs=in_chs, out_chs=out_chs, **more_channels)
    check_stride(stride)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round `value` to a multiple of `divisor`, never below 90 % of it (torchvision rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def same_conv(
    dims: int,
    in_chs: int,
    out_chs: int,
    kernel_size: int = 1,
    stride: int = 1,
    *,
    bias: bool,
    groups: int = 1,
    dilation: int = 1,
) -> nn.Module:
    """Conv whose padding keeps the size ("same") for odd kernels:
    ``(kernel_size - 1) // 2 * dilation``."""
    padding = (kernel_size - 1) // 2 * dilation
    conv = conv_type(dims)
    return conv(in_chs, out_chs, kernel_size, stride, padding, dilation, groups, bias=bias)


@dataclass(frozen=True)
class BlockLayers:
    """A block's normalization and activation, resolved once from names or factories, and its
    convs, which carry a bias exactly when the norm is `null`."""

    dims: int
    norm: LayerFactory
    act: LayerFactory

    @classmethod
    def resolve(
        cls,
        dims: int,
        norm_layer: str | LayerFactory,
        act_layer: str | LayerFactory,
        norm_kwargs: dict | None = None,
    ) -> BlockLayers:
        return cls(dims, resolve_norm(norm_layer, dims, norm_kwargs), resolve_act(act_layer))

    @functools.cached_property
    def has_norm(self) -> bool:
        """False when the norm resolves to the `null` placeholder."""
        return not is_null(self.norm(1))

    def conv(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        *,
        groups: int = 1,
        dilation: int = 1,
    ) -> nn.Module:
        """A "same" conv feeding this norm: bias only without a norm."""
        return same_conv(
            self.dims,
            in_chs,
            out_chs,
            kernel_size,
            stride,
            bias=not self.has_norm,
            groups=groups,
            dilation=dilation,
        )


class ConvNormAct(nn.Sequential):
    """conv → norm → act, children named `conv`, `norm`, `act`.

    A `null` norm or act (or ``act=False``) is left out; the conv has a bias exactly when there
    is no norm, and keeps the size for odd kernels (`same_conv`).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        *,
        layers: BlockLayers,
        act: bool = True,
        groups: int = 1,
        dilation: int = 1,
    ):
        super().__init__()
        self.conv = layers.conv(
            in_chs, out_chs, kernel_size, stride, groups=groups, dilation=dilation
        )
        if layers.has_norm:
            self.norm = layers.norm(out_chs)
        act_layer = layers.act(out_chs) if act else nn.Identity()
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


def norm_conv_downsample(
    in_chs: int,
    out_chs: int,
    stride: int,
    *,
    dims: int,
    norm: str = "layer",
    norm_kwargs: dict | None = None,
) -> nn.Sequential:
    """norm → conv(kernel = stride = `stride`, bias): ConvNeXt's between-stage downsampling."""
    conv = conv_type(dims)(in_chs, out_chs, stride, stride=stride, bias=True)
    return nn.Sequential(resolve_norm(norm, dims, norm_kwargs)(in_chs), conv)


class ResidualBlock(nn.Module):
    """Base of every residual block: ``branch(x) (→ drop path) + shortcut(x)``.

    Subclasses register, in forward order, the residual-branch layers, then `drop_path` (only
    when its probability is > 0 and there is a residual path) and `shortcut` (nn.Identity, a
    projection, or None when the block has no residual path); a layer applied after the merge
    is named `post_act`. Two blocks deviate from "branch and shortcut both read the input":
    a ConvNeXt block that changes shape starts with `downsample`, whose output feeds both;
    a pre-activation block's projection shortcut reads the output of `act1`.

    A block that always has a shortcut declares ``shortcut: nn.Module`` for the type checker
    under `TYPE_CHECKING`: TorchScript would try to compile a class annotation of a submodule.
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


class FixedDims(nn.Module):
    """Mixin of a 1d/2d/3d binding: calls the N-d block with the binding's `dims`."""

    dims: ClassVar[int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
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

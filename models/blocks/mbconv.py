"""Mobile blocks: inverted residual / MBConv (MobileNetV2, EfficientNet), FusedMBConv
(EfficientNetV2) and the depthwise-separable conv, laid out as in torchvision / timm."""

from typing import Literal

import torch
from torch import nn

from models.blocks.common import (
    BlockLayers,
    ConvNormAct,
    ResidualBlock,
    SqueezeExcite,
    bind_dims,
    check_block_args,
    make_divisible,
)
from models.layers import LayerFactory, check_choice

ChannelRounding = Literal["divisible", "round"]
CHANNEL_ROUNDINGS = ("divisible", "round")


def expanded_channels(in_chs: int, expand_ratio: float, rounding: ChannelRounding) -> int:
    """Hidden width of an inverted residual.

    ``"divisible"``: a multiple of 8 (torchvision EfficientNet, ``_make_divisible``);
    ``"round"``: ``int(round(in_chs * expand_ratio))`` (torchvision MobileNetV2).
    """
    check_choice("channel_rounding", rounding, CHANNEL_ROUNDINGS)
    if expand_ratio <= 0:
        raise ValueError(f"expand_ratio must be > 0, got {expand_ratio!r}")
    if rounding == "divisible":
        return make_divisible(in_chs * expand_ratio, 8)
    return round(in_chs * expand_ratio)


def squeeze_channels(in_chs: int, se_ratio: float) -> int:
    """SE bottleneck width, taken from the block input as torchvision does."""
    return max(1, int(in_chs * se_ratio))


def _identity_if_same_shape(in_chs: int, out_chs: int, stride: int) -> nn.Module | None:
    return nn.Identity() if stride == 1 and in_chs == out_chs else None


class MBConv(ResidualBlock):
    """Inverted residual: [1x1 expand conv-norm-act] → depthwise k×k conv(stride)-norm-act →
    [squeeze-excitation] → 1x1 project conv-norm (linear bottleneck); identity residual (with
    drop path) only when stride is 1 and in_chs == out_chs.

    The expand conv is skipped when the expanded width equals `in_chs` (expand_ratio 1).
    mobilenet_v2: ``act_layer="relu6", channel_rounding="round"``; EfficientNet:
    ``act_layer="silu", se_ratio=0.25, norm_kwargs={"eps": 1e-3}``.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        dims: int = 2,
        drop_path: float = 0.0,
        expand_ratio: float = 6.0,
        kernel_size: int = 3,
        se_ratio: float = 0.0,
        channel_rounding: ChannelRounding = "divisible",
        norm_layer: str | LayerFactory = "batch",
        act_layer: str | LayerFactory = "silu",
        norm_kwargs: dict | None = None,
    ):
        super().__init__()
        check_block_args(in_chs, out_chs, stride)
        mid = expanded_channels(in_chs, expand_ratio, channel_rounding)
        layers = BlockLayers.resolve(dims, norm_layer, act_layer, norm_kwargs)
        self.conv_pw = ConvNormAct(in_chs, mid, layers=layers) if mid != in_chs else None
        self.conv_dw = ConvNormAct(mid, mid, kernel_size, stride, layers=layers, groups=mid)
        self.se = (
            SqueezeExcite(mid, squeeze_channels(in_chs, se_ratio), dims=dims)
            if se_ratio > 0
            else None
        )
        self.conv_pwl = ConvNormAct(mid, out_chs, layers=layers, act=False)
        self.add_residual(_identity_if_same_shape(in_chs, out_chs, stride), drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, *S)
        out = x
        if self.conv_pw is not None:
            out = self.conv_pw(out)  # (B, mid, *S)
        out = self.conv_dw(out)  # (B, mid, *S / stride)
        if self.se is not None:
            out = self.se(out)
        out = self.conv_pwl(out)  # (B, C_out, *S / stride)
        if self.shortcut is None:
            return out
        return self.merge(out, self.shortcut(x))


class FusedMBConv(ResidualBlock):
    """EfficientNetV2 fused inverted residual: k×k conv(stride)-norm-act to the expanded width
    then 1x1 project conv-norm; with no expansion a single k×k conv(stride)-norm-act to
    `out_chs`. Identity residual (with drop path) when stride is 1 and in_chs == out_chs."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        dims: int = 2,
        drop_path: float = 0.0,
        expand_ratio: float = 4.0,
        kernel_size: int = 3,
        channel_rounding: ChannelRounding = "divisible",
        norm_layer: str | LayerFactory = "batch",
        act_layer: str | LayerFactory = "silu",
        norm_kwargs: dict | None = None,
    ):
        super().__init__()
        check_block_args(in_chs, out_chs, stride)
        mid = expanded_channels(in_chs, expand_ratio, channel_rounding)
        layers = BlockLayers.resolve(dims, norm_layer, act_layer, norm_kwargs)
        expands = mid != in_chs
        self.conv_exp = ConvNormAct(
            in_chs, mid if expands else out_chs, kernel_size, stride, layers=layers
        )
        self.conv_pwl = ConvNormAct(mid, out_chs, layers=layers, act=False) if expands else None
        self.add_residual(_identity_if_same_shape(in_chs, out_chs, stride), drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, *S)
        out = self.conv_exp(x)  # (B, mid or C_out, *S / stride)
        if self.conv_pwl is not None:
            out = self.conv_pwl(out)  # (B, C_out, *S / stride)
        if self.shortcut is None:
            return out
        return self.merge(out, self.shortcut(x))


class DepthwiseSeparable(ResidualBlock):
    """Depthwise k×k conv(stride)-norm-act → [squeeze-excitation] → pointwise 1x1 conv-norm
    (timm ``DepthwiseSeparableConv``); identity residual when stride is 1 and
    in_chs == out_chs."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        dims: int = 2,
        drop_path: float = 0.0,
        kernel_size: int = 3,
        se_ratio: float = 0.0,
        norm_layer: str | LayerFactory = "batch",
        act_layer: str | LayerFactory = "relu",
        norm_kwargs: dict | None = None,
    ):
        super().__init__()
        check_block_args(in_chs, out_chs, stride)
        layers = BlockLayers.resolve(dims, norm_layer, act_layer, norm_kwargs)
        self.conv_dw = ConvNormAct(
            in_chs, in_chs, kernel_size, stride, layers=layers, groups=in_chs
        )
        self.se = (
            SqueezeExcite(in_chs, squeeze_channels(in_chs, se_ratio), dims=dims)
            if se_ratio > 0
            else None
        )
        self.conv_pw = ConvNormAct(in_chs, out_chs, layers=layers, act=False)
        self.add_residual(_identity_if_same_shape(in_chs, out_chs, stride), drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, *S)
        out = self.conv_dw(x)  # (B, C_in, *S / stride)
        if self.se is not None:
            out = self.se(out)
        out = self.conv_pw(out)  # (B, C_out, *S / stride)
        if self.shortcut is None:
            return out
        return self.merge(out, self.shortcut(x))


MBConv1d, MBConv2d, MBConv3d = bind_dims(MBConv)
FusedMBConv1d, FusedMBConv2d, FusedMBConv3d = bind_dims(FusedMBConv)
DepthwiseSeparable1d, DepthwiseSeparable2d, DepthwiseSeparable3d = bind_dims(DepthwiseSeparable)

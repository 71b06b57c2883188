"""ResNet blocks (He et al. 2015) and their pre-activation variants (He et al. 2016,
"Identity Mappings in Deep Residual Networks").

`BasicBlock` and `Bottleneck` mirror torchvision's layout and registration order
(conv1, bn1, conv2, bn2[, conv3, bn3], then the shortcut, torchvision's ``downsample``), so a
torchvision state dict maps onto them key by key.
"""

from typing import TYPE_CHECKING

import torch
from torch import nn

from models.blocks.common import (
    BlockLayers,
    ResidualBlock,
    bind_dims,
    check_block_args,
    same_conv,
)
from models.layers import LayerFactory

EXPANSION = 4
"""Bottleneck output channels / bottleneck planes."""


def projection(
    in_chs: int, out_chs: int, stride: int, layers: BlockLayers, *, with_norm: bool = True
) -> nn.Module:
    """Identity when shapes match, else 1x1 conv(stride) → norm (torchvision `downsample`);
    ``with_norm=False`` (pre-activation): the bare 1x1 conv, without bias."""
    if stride == 1 and in_chs == out_chs:
        return nn.Identity()
    if not with_norm:
        return nn.Sequential(same_conv(layers.dims, in_chs, out_chs, 1, stride, bias=False))
    conv = layers.conv(in_chs, out_chs, 1, stride)
    return nn.Sequential(conv, layers.norm(out_chs)) if layers.has_norm else nn.Sequential(conv)


def bottleneck_width(out_chs: int, groups: int = 1, base_width: int = 64) -> int:
    """Width of the bottleneck's grouped k×k conv, as torchvision computes it."""
    if out_chs % EXPANSION:
        raise ValueError(f"bottleneck out_chs must be a multiple of {EXPANSION}, got {out_chs}")
    planes = out_chs // EXPANSION
    return int(planes * (base_width / 64.0)) * groups


class BasicBlock(ResidualBlock):
    """conv3x3(stride)-norm-act-conv3x3-norm + shortcut, then act."""

    if TYPE_CHECKING:
        shortcut: nn.Module

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        dims: int = 2,
        drop_path: float = 0.0,
        kernel_size: int = 3,
        norm_layer: str | LayerFactory = "batch",
        act_layer: str | LayerFactory = "relu",
        norm_kwargs: dict | None = None,
    ):
        super().__init__()
        check_block_args(in_chs, out_chs, stride)
        layers = BlockLayers.resolve(dims, norm_layer, act_layer, norm_kwargs)
        conv, norm, act = layers.conv, layers.norm, layers.act
        self.conv1 = conv(in_chs, out_chs, kernel_size, stride)
        self.bn1 = norm(out_chs)
        self.act1 = act(out_chs)
        self.conv2 = conv(out_chs, out_chs, kernel_size)
        self.bn2 = norm(out_chs)
        self.add_residual(projection(in_chs, out_chs, stride, layers), drop_path)
        self.post_act = act(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, *S)
        out = self.act1(self.bn1(self.conv1(x)))  # (B, C_out, *S / stride)
        out = self.bn2(self.conv2(out))
        return self.post_act(self.merge(out, self.shortcut(x)))


class Bottleneck(ResidualBlock):
    """conv1x1-norm-act, conv k×k(stride, groups, dilation)-norm-act, conv1x1-norm + shortcut,
    then act. `out_chs` = planes × 4; the inner width follows torchvision (`base_width`,
    `groups`), so resnext50_32x4d is ``groups=32, base_width=4``."""

    if TYPE_CHECKING:
        shortcut: nn.Module

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        dims: int = 2,
        drop_path: float = 0.0,
        kernel_size: int = 3,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: str | LayerFactory = "batch",
        act_layer: str | LayerFactory = "relu",
        norm_kwargs: dict | None = None,
    ):
        super().__init__()
        check_block_args(in_chs, out_chs, stride, groups=groups, dilation=dilation)
        width = bottleneck_width(out_chs, groups, base_width)
        layers = BlockLayers.resolve(dims, norm_layer, act_layer, norm_kwargs)
        conv, norm, act = layers.conv, layers.norm, layers.act
        self.conv1 = conv(in_chs, width)
        self.bn1 = norm(width)
        self.act1 = act(width)
        self.conv2 = conv(width, width, kernel_size, stride, groups=groups, dilation=dilation)
        self.bn2 = norm(width)
        self.act2 = act(width)
        self.conv3 = conv(width, out_chs)
        self.bn3 = norm(out_chs)
        self.add_residual(projection(in_chs, out_chs, stride, layers), drop_path)
        self.post_act = act(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, *S)
        out = self.act1(self.bn1(self.conv1(x)))  # (B, width, *S)
        out = self.act2(self.bn2(self.conv2(out)))  # (B, width, *S / stride)
        out = self.bn3(self.conv3(out))  # (B, C_out, *S / stride)
        return self.post_act(self.merge(out, self.shortcut(x)))


class PreActBasicBlock(ResidualBlock):
    """norm-act-conv3x3(stride)-norm-act-conv3x3 + shortcut, nothing after the add.

    A projection shortcut (1x1 conv, no norm) reads the pre-activated input (the output of
    `act1`); an identity shortcut reads the raw input.
    """

    if TYPE_CHECKING:
        shortcut: nn.Module

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        dims: int = 2,
        drop_path: float = 0.0,
        kernel_size: int = 3,
        norm_layer: str | LayerFactory = "batch",
        act_layer: str | LayerFactory = "relu",
        norm_kwargs: dict | None = None,
    ):
        super().__init__()
        check_block_args(in_chs, out_chs, stride)
        layers = BlockLayers.resolve(dims, norm_layer, act_layer, norm_kwargs)
        conv, norm, act = layers.conv, layers.norm, layers.act
        self.bn1 = norm(in_chs)
        self.act1 = act(in_chs)
        self.conv1 = conv(in_chs, out_chs, kernel_size, stride)
        self.bn2 = norm(out_chs)
        self.act2 = act(out_chs)
        self.conv2 = conv(out_chs, out_chs, kernel_size)
        self.projects = stride != 1 or in_chs != out_chs
        self.add_residual(projection(in_chs, out_chs, stride, layers, with_norm=False), drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, *S)
        pre = self.act1(self.bn1(x))
        skip = self.shortcut(pre if self.projects else x)  # (B, C_out, *S / stride)
        out = self.conv1(pre)
        out = self.conv2(self.act2(self.bn2(out)))
        return self.merge(out, skip)


class PreActBottleneck(ResidualBlock):
    """norm-act-conv1x1, norm-act-conv k×k(stride, groups, dilation), norm-act-conv1x1
    + shortcut, nothing after the add. Widths as in `Bottleneck`; the projection shortcut
    reads the pre-activated input as in `PreActBasicBlock`."""

    if TYPE_CHECKING:
        shortcut: nn.Module

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        dims: int = 2,
        drop_path: float = 0.0,
        kernel_size: int = 3,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: str | LayerFactory = "batch",
        act_layer: str | LayerFactory = "relu",
        norm_kwargs: dict | None = None,
    ):
        super().__init__()
        check_block_args(in_chs, out_chs, stride, groups=groups, dilation=dilation)
        width = bottleneck_width(out_chs, groups, base_width)
        layers = BlockLayers.resolve(dims, norm_layer, act_layer, norm_kwargs)
        conv, norm, act = layers.conv, layers.norm, layers.act
        self.bn1 = norm(in_chs)
        self.act1 = act(in_chs)
        self.conv1 = conv(in_chs, width)
        self.bn2 = norm(width)
        self.act2 = act(width)
        self.conv2 = conv(width, width, kernel_size, stride, groups=groups, dilation=dilation)
        self.bn3 = norm(width)
        self.act3 = act(width)
        self.conv3 = conv(width, out_chs)
        self.projects = stride != 1 or in_chs != out_chs
        self.add_residual(projection(in_chs, out_chs, stride, layers, with_norm=False), drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, *S)
        pre = self.act1(self.bn1(x))
        skip = self.shortcut(pre if self.projects else x)  # (B, C_out, *S / stride)
        out = self.conv1(pre)  # (B, width, *S)
        out = self.conv2(self.act2(self.bn2(out)))  # (B, width, *S / stride)
        out = self.conv3(self.act3(self.bn3(out)))  # (B, C_out, *S / stride)
        return self.merge(out, skip)


BasicBlock1d, BasicBlock2d, BasicBlock3d = bind_dims(BasicBlock)
Bottleneck1d, Bottleneck2d, Bottleneck3d = bind_dims(Bottleneck)
PreActBasicBlock1d, PreActBasicBlock2d, PreActBasicBlock3d = bind_dims(PreActBasicBlock)
PreActBottleneck1d, PreActBottleneck2d, PreActBottleneck3d = bind_dims(PreActBottleneck)

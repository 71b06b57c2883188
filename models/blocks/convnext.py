"""ConvNeXt block (Liu et al. 2022), laid out as torchvision's ``CNBlock``."""

from typing import TYPE_CHECKING

import torch
from torch import nn

from models.blocks.common import (
    ResidualBlock,
    bind_dims,
    check_block_args,
    norm_conv_downsample,
)
from models.layers import LayerFactory, conv_type, resolve_act


class ConvNeXtBlock(ResidualBlock):
    """depthwise k×k conv → LayerNorm (channels-last) → Linear(C, 4C) → GELU → Linear(4C, C)
    → layer scale → drop path, plus the identity.

    When the block changes width or strides it starts with `downsample`: LayerNorm over
    channels then a conv with kernel = stride = `stride` (torchvision's between-stage
    downsampling layer, here owned by the first block of the stage). The residual branch and
    the identity both start from its output.
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
        kernel_size: int = 7,
        mlp_ratio: int = 4,
        layer_scale_init: float = 1e-6,
        act_layer: str | LayerFactory = "gelu",
        norm_kwargs: dict | None = None,
    ):
        super().__init__()
        check_block_args(in_chs, out_chs, stride, mlp_ratio=mlp_ratio)
        norm_kwargs = {"eps": 1e-6, **(norm_kwargs or {})}
        hidden = mlp_ratio * out_chs
        self.downsample = (
            norm_conv_downsample(in_chs, out_chs, stride, dims=dims, norm_kwargs=norm_kwargs)
            if stride != 1 or in_chs != out_chs
            else None
        )
        self.conv_dw = conv_type(dims)(
            out_chs, out_chs, kernel_size, padding=kernel_size // 2, groups=out_chs
        )
        self.norm = nn.LayerNorm(out_chs, **norm_kwargs)
        self.pwconv1 = nn.Linear(out_chs, hidden)
        self.act = resolve_act(act_layer)(hidden)
        self.pwconv2 = nn.Linear(hidden, out_chs)
        self.layer_scale = nn.Parameter(torch.full((out_chs,) + (1,) * dims, layer_scale_init))
        self.add_residual(nn.Identity(), drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, *S)
        if self.downsample is not None:
            x = self.downsample(x)  # (B, C_out, *S / stride)
        last = x.dim() - 1  # positive axes: ONNX Transpose rejects negative perms
        out = self.norm(self.conv_dw(x).movedim(1, last))  # (B, *S', C)
        out = self.pwconv2(self.act(self.pwconv1(out)))  # (B, *S', C)
        out = self.layer_scale * out.movedim(last, 1)  # (B, C, *S')
        return self.merge(out, self.shortcut(x))


ConvNeXtBlock1d, ConvNeXtBlock2d, ConvNeXtBlock3d = bind_dims(ConvNeXtBlock)

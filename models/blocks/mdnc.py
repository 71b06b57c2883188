"""MDNC (Modern Deep Network Toolkits) layers and residual blocks, faithful to
``mdnc.modules.conv.ConvModern*`` and ``mdnc.modules.resnet.BlockPlain*/BlockBottleneck*``.

The N-d classes take the uniform stage-block constructor; the 1d/2d/3d bindings
(`ConvModern1d`, `BlockPlain2d`, `BlockBottleneck1d`, ...) keep MDNC's exact signature.
"""

import functools
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from models.blocks.common import ResidualBlock, bind_dims, check_channels, check_stride
from models.layers import (
    act_factory,
    check_choice,
    conv_type,
    is_null,
    norm_factory,
    upsample_mode,
)

LAYER_ORDERS = ("new", "old")
SCALERS = ("down", "up")


def _scales(stride: int, output_size: int | tuple[int, ...] | None, scaler: str) -> bool:
    """Whether a layer with these settings changes the spatial size."""
    return stride > 1 or (scaler == "up" and output_size is not None)


def _check_scaling(stride: int, output_size: int | tuple[int, ...] | None, scaler: str) -> None:
    check_stride(stride)
    check_choice("scaler", scaler, SCALERS)
    if output_size is not None and scaler != "up":
        raise ValueError("output_size is only used with scaler='up'")


def _upsample(dims: int, stride: int, output_size: int | tuple[int, ...] | None) -> nn.Upsample:
    """Interpolate to `output_size` when given, else by the factor `stride`."""
    mode = upsample_mode(dims)
    if output_size is not None:
        return nn.Upsample(size=output_size, mode=mode, align_corners=True)
    return nn.Upsample(scale_factor=float(stride), mode=mode, align_corners=True)


class ConvModern(nn.Sequential):
    """MDNC modern convolution: norm → act → conv (``layer_order='new'``, pre-activation) or
    conv → norm → act (``'old'``). With ``normalizer='null'`` it is conv (with bias) → act.

    ``scaler='down'`` strides the conv; ``scaler='up'`` first interpolates to `output_size`
    (or by `stride`), then runs a stride-1 conv.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        *,
        dims: int = 2,
        kernel_size: int = 3,
        padding: int | None = None,
        output_size: int | tuple[int, ...] | None = None,
        normalizer: str = "pinst",
        activator: str = "prelu",
        layer_order: str = "new",
        scaler: str = "down",
    ):
        check_channels(in_chs=in_chs, out_chs=out_chs)
        _check_scaling(stride, output_size, scaler)
        check_choice("layer_order", layer_order, LAYER_ORDERS)
        norm, act = norm_factory(normalizer, dims), act_factory(activator)
        with_norm = normalizer != "null"
        upsampling = scaler == "up" and _scales(stride, output_size, scaler)

        layers: list[nn.Module] = []
        if with_norm and layer_order == "new":
            layers += [norm(in_chs), act(in_chs)]
        if upsampling:
            layers.append(_upsample(dims, stride, output_size))
        layers.append(
            conv_type(dims)(
                in_chs,
                out_chs,
                kernel_size,
                stride=1 if scaler == "up" else stride,
                padding=kernel_size // 2 if padding is None else padding,
                bias=not with_norm,
            )
        )
        if not with_norm:
            layers.append(act(out_chs))
        elif layer_order == "old":
            layers += [norm(out_chs), act(out_chs)]
        super().__init__(*(layer for layer in layers if not is_null(layer)))


def mdnc_shortcut(
    in_chs: int,
    out_chs: int,
    stride: int,
    *,
    dims: int,
    output_size: int | tuple[int, ...] | None,
    normalizer: str,
    scaler: str,
) -> nn.Module:
    """Identity, or when the block scales or changes channels the projection
    (upsample →) 1x1 conv → norm; with ``normalizer='null'`` a 1x1 conv with bias."""
    scales = _scales(stride, output_size, scaler)
    if not scales and in_chs == out_chs:
        return nn.Identity()
    upsampling = scales and scaler == "up"
    layers: list[nn.Module] = [_upsample(dims, stride, output_size)] if upsampling else []
    with_norm = normalizer != "null"
    conv_stride = 1 if scaler == "up" else stride
    layers.append(conv_type(dims)(in_chs, out_chs, 1, stride=conv_stride, bias=not with_norm))
    if with_norm:
        layers.append(norm_factory(normalizer, dims)(out_chs))
    return nn.Sequential(*layers)


class MDNCPlain(ResidualBlock):
    """MDNC plain residual block: k×k conv in→in, k×k conv in→out carrying the scaling, plus
    the shortcut; no activation after the add."""

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
        padding: int | None = None,
        output_size: int | tuple[int, ...] | None = None,
        normalizer: str = "pinst",
        activator: str = "prelu",
        layer_order: str = "new",
        scaler: str = "down",
    ):
        super().__init__()
        conv = functools.partial(
            ConvModern,
            dims=dims,
            kernel_size=kernel_size,
            padding=padding,
            normalizer=normalizer,
            activator=activator,
            layer_order=layer_order,
        )
        self.conv1 = conv(in_chs, in_chs)
        self.conv2 = conv(in_chs, out_chs, stride, output_size=output_size, scaler=scaler)
        shortcut = mdnc_shortcut(
            in_chs,
            out_chs,
            stride,
            dims=dims,
            output_size=output_size,
            normalizer=normalizer,
            scaler=scaler,
        )
        self.add_residual(shortcut, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, *S)
        out = self.conv2(self.conv1(x))  # (B, C_out, *S')
        return self.merge(out, self.shortcut(x))


class MDNCBottleneck(ResidualBlock):
    """MDNC bottleneck residual block: 1x1 conv in→in, k×k conv in→in carrying the scaling,
    1x1 conv in→out, plus the shortcut; no activation after the add."""

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
        padding: int | None = None,
        output_size: int | tuple[int, ...] | None = None,
        normalizer: str = "pinst",
        activator: str = "prelu",
        layer_order: str = "new",
        scaler: str = "down",
    ):
        super().__init__()
        conv = functools.partial(
            ConvModern,
            dims=dims,
            normalizer=normalizer,
            activator=activator,
            layer_order=layer_order,
        )
        self.conv1 = conv(in_chs, in_chs, kernel_size=1, padding=0)
        self.conv2 = conv(
            in_chs,
            in_chs,
            stride,
            kernel_size=kernel_size,
            padding=padding,
            output_size=output_size,
            scaler=scaler,
        )
        self.conv3 = conv(in_chs, out_chs, kernel_size=1, padding=0)
        shortcut = mdnc_shortcut(
            in_chs,
            out_chs,
            stride,
            dims=dims,
            output_size=output_size,
            normalizer=normalizer,
            scaler=scaler,
        )
        self.add_residual(shortcut, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, *S)
        out = self.conv3(self.conv2(self.conv1(x)))  # (B, C_out, *S')
        return self.merge(out, self.shortcut(x))


class MDNCSignature(nn.Module):
    """Constructor of the MDNC bindings, with MDNC's exact signature."""

    dims: ClassVar[int]

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        output_size: int | tuple[int, ...] | None = None,
        normalizer: str = "pinst",
        activator: str = "prelu",
        layer_order: str = "new",
        scaler: str = "down",
    ) -> None:
        super().__init__(
            in_planes,
            out_planes,
            stride,
            dims=self.dims,
            kernel_size=kernel_size,
            padding=padding,
            output_size=output_size,
            normalizer=normalizer,
            activator=activator,
            layer_order=layer_order,
            scaler=scaler,
        )


ConvModern1d, ConvModern2d, ConvModern3d = bind_dims(ConvModern, init=MDNCSignature)
BlockPlain1d, BlockPlain2d, BlockPlain3d = bind_dims(MDNCPlain, "BlockPlain", MDNCSignature)
BlockBottleneck1d, BlockBottleneck2d, BlockBottleneck3d = bind_dims(
    MDNCBottleneck, "BlockBottleneck", MDNCSignature
)

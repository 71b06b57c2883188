"""One builder for every family and dimension: `build_network(spec) -> Network`.

Module layout (also the state-dict key layout):

    stem                      STEM_TYPES[spec.stem.kind]
    stages.{i}.downsample     optional stage transition (ConvNeXt norm → strided conv)
    stages.{i}.blocks.{j}     models.blocks.BLOCK_TYPES[stage.block]
    head.pre_pool             optional norm→act or 1×1 conv→norm→act
    head.pool / head.norm / head.flatten / head.dropout / head.fc
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from models.blocks import BLOCK_TYPES, ConvModern
from models.blocks.common import BlockLayers, ConvNormAct, norm_conv_downsample
from models.layers import (
    adaptive_avg_pool_type,
    conv_type,
    make_norm,
)
from models.spec import NetworkSpec, StageSpec, StemSpec

__all__ = ["DOWNSAMPLE_TYPES", "STEM_TYPES", "Network", "build_network"]

_MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_NORMS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.GroupNorm,
)
_ADAPTIVE_MAX_POOL = {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d}


def conv_stem(
    in_chans: int,
    width: int,
    *,
    dims: int,
    kernel_size: int = 3,
    stride: int = 1,
    norm: str = "batch",
    norm_kwargs: dict | None = None,
    act: str = "relu",
    pool: bool = False,
) -> nn.Sequential:
    """conv(k, s, "same" padding) → norm → act, then an optional 3/2 max-pool (ResNet)."""
    layers = BlockLayers.resolve(dims, norm, act, norm_kwargs)
    stem = ConvNormAct(in_chans, width, kernel_size, stride, layers=layers)
    if pool:
        stem.add_module("pool", _MAX_POOL[dims](kernel_size=3, stride=2, padding=1))
    return stem


def patchify_stem(
    in_chans: int,
    width: int,
    *,
    dims: int,
    patch_size: int = 4,
    norm: str = "layer",
    norm_kwargs: dict | None = None,
) -> nn.Sequential:
    """Non-overlapping patches: conv(kernel = stride = patch_size, bias) → norm (ConvNeXt)."""
    conv = conv_type(dims)(in_chans, width, patch_size, stride=patch_size, bias=True)
    return nn.Sequential(conv, make_norm(norm, width, dims, **(norm_kwargs or {})))


def mdnc_stem(in_chans: int, width: int, *, dims: int, **conv_modern_kwargs: Any) -> nn.Module:
    """An MDNC `ConvModern` layer (kernel_size, stride, normalizer, activator, layer_order)."""
    return ConvModern(in_chans, width, dims=dims, **conv_modern_kwargs)


STEM_TYPES: dict[str, Callable[..., nn.Module]] = {
    "conv": conv_stem,
    "patchify": patchify_stem,
    "mdnc": mdnc_stem,
}


DOWNSAMPLE_TYPES: dict[str, Callable[..., nn.Module]] = {"norm_conv": norm_conv_downsample}


class Stage(nn.Module):
    """An optional downsampling transition followed by a sequence of blocks."""

    def __init__(self, downsample: nn.Module | None, blocks: list[nn.Module]):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, *S_in)
        if self.downsample is not None:
            x = self.downsample(x)  # (B, C_out, *S_in / stride)
        return self.blocks(x)  # (B, C_out, *S_out)


class ClassifierHead(nn.Module):
    """Optional pre-pool layer → global pool → optional norm → dropout → linear."""

    def __init__(self, spec: NetworkSpec, in_chs: int):
        super().__init__()
        head, dims = spec.head, spec.dims
        layers = BlockLayers.resolve(dims, head.norm, head.act, head.norm_kwargs)
        self.pre_pool: nn.Module | None
        if head.pre_pool == "conv_norm_act":
            assert head.pre_pool_width is not None  # HeadSpec requires it for this kind
            self.pre_pool = ConvNormAct(in_chs, head.pre_pool_width, layers=layers)
        elif head.pre_pool == "norm_act":
            self.pre_pool = nn.Sequential(layers.norm(in_chs), layers.act(in_chs))
        else:
            self.pre_pool = None
        pool_type = adaptive_avg_pool_type(dims) if head.pool == "avg" else _ADAPTIVE_MAX_POOL[dims]
        self.pool = pool_type(1)
        features = spec.num_features
        self.norm = (
            make_norm(head.pooled_norm, features, dims, **head.norm_kwargs)
            if head.pooled_norm is not None
            else None
        )
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(head.dropout) if head.dropout > 0.0 else None
        self.fc = nn.Linear(features, head.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, *S)
        if self.pre_pool is not None:
            x = self.pre_pool(x)  # (B, F, *S)
        x = self.pool(x)  # (B, F, 1, ...)
        if self.norm is not None:
            x = self.norm(x)
        x = self.flatten(x)  # (B, F)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc(x)  # (B, num_classes)


class Network(nn.Module):
    """stem → stages → head; `forward` returns logits (B, num_classes)."""

    def __init__(self, spec: NetworkSpec):
        super().__init__()
        self.spec = spec
        self.stem = _build_stem(spec.stem, spec)
        self.stages = nn.Sequential(*_build_stages(spec))
        self.head = ClassifierHead(spec, spec.stages[-1].width)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, *S)
        return self.stages(self.stem(x))  # (B, C_last, *S / total_stride)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_last, *S')
        return self.head(x)  # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, *S)
        return self.forward_head(self.forward_features(x))  # (B, num_classes)


def build_network(spec: NetworkSpec) -> Network:
    """Build the `nn.Module` described by `spec` (validated first)."""
    if not isinstance(spec, NetworkSpec):
        raise TypeError(f"build_network expects a NetworkSpec, got {type(spec).__name__}")
    spec.validate()
    return Network(spec)


def _build_stem(stem: StemSpec, spec: NetworkSpec) -> nn.Module:
    make = _lookup(STEM_TYPES, stem.kind, "stem.kind", "stem")
    with _naming(f"stem ({stem.kind!r}, kwargs={stem.kwargs})"):
        return make(spec.in_chans, stem.width, dims=spec.dims, **stem.kwargs)


def _build_stages(spec: NetworkSpec) -> list[Stage]:
    stages, in_chs = [], spec.stem.width
    for index, (stage, rates) in enumerate(zip(spec.stages, spec.drop_path_rates(), strict=True)):
        stages.append(_build_stage(stage, rates, in_chs, spec.dims, f"stages[{index}]"))
        in_chs = stage.width
    return stages


def _build_stage(stage: StageSpec, rates: list[float], in_chs: int, dims: int, path: str) -> Stage:
    block_type = _lookup(BLOCK_TYPES, stage.block, f"{path}.block", "block type")
    downsample, stride = None, stage.stride
    if stage.downsample is not None:
        make = _lookup(DOWNSAMPLE_TYPES, stage.downsample, f"{path}.downsample", "downsample")
        with _naming(f"{path}.downsample_kwargs={stage.downsample_kwargs}"):
            downsample = make(in_chs, stage.width, stride, dims=dims, **stage.downsample_kwargs)
        in_chs, stride = stage.width, 1
    blocks = []
    for rate in rates:
        with _naming(f"{path} ({stage.block!r}, kwargs={stage.kwargs})"):
            blocks.append(
                block_type(in_chs, stage.width, stride, dims=dims, drop_path=rate, **stage.kwargs)
            )
        in_chs, stride = stage.width, 1
    return Stage(downsample, blocks)


def _lookup(
    table: Mapping[str, Callable[..., nn.Module]], name: str, path: str, what: str
) -> Callable[..., nn.Module]:
    if name not in table:
        raise ValueError(f"{path}: unknown {what} {name!r}; allowed: {', '.join(sorted(table))}")
    return table[name]


@contextmanager
def _naming(where: str) -> Iterator[None]:
    """Re-raise a constructor's TypeError/ValueError as ValueError prefixed with the spec field."""
    try:
        yield
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from error


def init_weights(module: nn.Module) -> None:
    """torchvision-style init: convs kaiming-normal (fan_out, relu), affine norms 1 / 0.

    Linear layers and block-specific parameters (e.g. ConvNeXt layer scale) keep the values
    their constructors gave them.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, _NORMS) and layer.weight is not None:
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)

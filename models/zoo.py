"""The model zoo: one `@register_model` function per architecture, each returning its spec.

torchvision-equivalent models reproduce torchvision's layout, parameter counts, norm eps,
dropout and stochastic-depth schedule; `models.convert.from_torchvision` maps their weights.
"""

from __future__ import annotations

from typing import Any

from models.registry import register_model
from models.spec import HeadSpec, NetworkSpec, StageSpec, StemSpec

RESNET_WIDTHS = (64, 128, 256, 512)
BN_EPS_EFFICIENTNET = {"eps": 1e-3}
LN_EPS_CONVNEXT = {"eps": 1e-6}


def _resnet_stages(
    block: str,
    depths: tuple[int, ...],
    widths: tuple[int, ...],
    strides: tuple[int, ...],
    **kw: Any,
) -> list[StageSpec]:
    return [
        StageSpec(block, width, depth, stride, dict(kw))
        for width, depth, stride in zip(widths, depths, strides, strict=True)
    ]


def _resnet(
    block: str, depths: tuple[int, ...], *, preact: bool = False, **block_kwargs: Any
) -> NetworkSpec:
    """torchvision ResNet (v1.5: the stride sits on the 3×3 conv of a bottleneck)."""
    expansion = 4 if "bottleneck" in block else 1
    widths = tuple(width * expansion for width in RESNET_WIDTHS)
    return NetworkSpec(
        stem=StemSpec("conv", 64, {"kernel_size": 7, "stride": 2, "pool": True}),
        stages=_resnet_stages(block, depths, widths, (1, 2, 2, 2), **block_kwargs),
        head=HeadSpec(num_classes=1000, pre_pool="norm_act" if preact else "none"),
    )


@register_model
def resnet18() -> NetworkSpec:
    return _resnet("basic", (2, 2, 2, 2))


@register_model
def resnet34() -> NetworkSpec:
    return _resnet("basic", (3, 4, 6, 3))


@register_model
def resnet50() -> NetworkSpec:
    return _resnet("bottleneck", (3, 4, 6, 3))


@register_model
def resnet101() -> NetworkSpec:
    return _resnet("bottleneck", (3, 4, 23, 3))


@register_model
def resnet152() -> NetworkSpec:
    return _resnet("bottleneck", (3, 8, 36, 3))


@register_model
def resnext50_32x4d() -> NetworkSpec:
    return _resnet("bottleneck", (3, 4, 6, 3), groups=32, base_width=4)


@register_model
def wide_resnet50_2() -> NetworkSpec:
    return _resnet("bottleneck", (3, 4, 6, 3), base_width=128)


@register_model
def preact_resnet18() -> NetworkSpec:
    """Pre-activation ResNet-18 (He et al. 2016): final norm→act before the pool."""
    return _resnet("preact_basic", (2, 2, 2, 2), preact=True)


@register_model
def preact_resnet50() -> NetworkSpec:
    return _resnet("preact_bottleneck", (3, 4, 6, 3), preact=True)


def _small_resnet(
    in_chans: int, widths: tuple[int, ...], strides: tuple[int, ...], num_classes: int = 10
) -> NetworkSpec:
    """A ResNet for small inputs: 3×3 stride-1 stem, one basic block per stage."""
    return NetworkSpec(
        in_chans=in_chans,
        stem=StemSpec("conv", widths[0], {"kernel_size": 3, "stride": 1}),
        stages=_resnet_stages("basic", (1,) * len(widths), widths, strides),
        head=HeadSpec(num_classes=num_classes),
    )


@register_model
def resnet_tiny() -> NetworkSpec:
    """3×32×32 → 10 classes, ~77k params; the fast model for tests."""
    return _small_resnet(3, (16, 32, 64), (1, 2, 2))


@register_model
def resnet_digits() -> NetworkSpec:
    """1×8×8 (sklearn digits) → 10 classes: 8×8 → 8×8 → 4×4, ~77k params."""
    return _small_resnet(1, (32, 64), (1, 2))


@register_model
def resnet_mnist() -> NetworkSpec:
    """1×28×28 (MNIST) → 10 classes: 28 → 28 → 14 → 7."""
    return _small_resnet(1, (32, 64, 128), (1, 2, 2))


def _mdnc_encoder(dims: int, in_chans: int) -> NetworkSpec:
    """MDNC pre-activation encoder: plain conv stem, four ½-downsampling bottleneck stages,
    final InstanceNorm→PReLU, global pool, linear."""
    block = {"kernel_size": 3, "normalizer": "pinst", "activator": "prelu", "layer_order": "new"}
    return NetworkSpec(
        dims=dims,
        in_chans=in_chans,
        stem=StemSpec("mdnc", 16, {"kernel_size": 5, "normalizer": "null", "activator": "null"}),
        stages=[
            StageSpec("mdnc_plain", 32, 1, 2, dict(block)),
            StageSpec("mdnc_bottleneck", 64, 2, 2, dict(block)),
            StageSpec("mdnc_bottleneck", 128, 2, 2, dict(block)),
            StageSpec("mdnc_bottleneck", 256, 1, 2, dict(block)),
        ],
        head=HeadSpec(num_classes=10, pre_pool="norm_act", norm="pinst", act="prelu"),
    )


@register_model
def mdnc_encoder1d() -> NetworkSpec:
    """1×256 signals → 10 classes (256 → 16 after the four stages)."""
    return _mdnc_encoder(1, 1)


@register_model
def mdnc_encoder2d() -> NetworkSpec:
    """3×64×64 images → 10 classes (64 → 4 after the four stages)."""
    return _mdnc_encoder(2, 3)


# t (expand ratio), c (width), n (depth), s (stride) — torchvision MobileNetV2.
MOBILENET_V2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


@register_model
def mobilenet_v2() -> NetworkSpec:
    block = {"kernel_size": 3, "act_layer": "relu6", "channel_rounding": "round"}
    return NetworkSpec(
        stem=StemSpec("conv", 32, {"kernel_size": 3, "stride": 2, "act": "relu6"}),
        stages=[
            StageSpec("mbconv", width, depth, stride, {"expand_ratio": ratio, **block})
            for ratio, width, depth, stride in MOBILENET_V2_STAGES
        ],
        head=HeadSpec(
            num_classes=1000,
            pre_pool="conv_norm_act",
            pre_pool_width=1280,
            act="relu6",
            dropout=0.2,
        ),
    )


# block, expand ratio, width, depth, stride — torchvision EfficientNetV2-S (SE only in MBConv).
EFFICIENTNET_V2_S_STAGES = (
    ("fused_mbconv", 1, 24, 2, 1),
    ("fused_mbconv", 4, 48, 4, 2),
    ("fused_mbconv", 4, 64, 4, 2),
    ("mbconv", 4, 128, 6, 2),
    ("mbconv", 6, 160, 9, 1),
    ("mbconv", 6, 256, 15, 2),
)


@register_model
def efficientnet_v2_s() -> NetworkSpec:
    """BatchNorm eps 1e-3, SiLU, SE 0.25 of the block input in MBConv stages, stochastic
    depth 0.2 over rate * i / n_blocks, dropout 0.2 (torchvision)."""
    norm = {"norm_kwargs": BN_EPS_EFFICIENTNET}
    stages = []
    for block, ratio, width, depth, stride in EFFICIENTNET_V2_S_STAGES:
        kwargs = {"expand_ratio": ratio, "kernel_size": 3, "act_layer": "silu", **norm}
        if block == "mbconv":
            kwargs["se_ratio"] = 0.25
        stages.append(StageSpec(block, width, depth, stride, kwargs))
    return NetworkSpec(
        stem=StemSpec("conv", 24, {"kernel_size": 3, "stride": 2, "act": "silu", **norm}),
        stages=stages,
        head=HeadSpec(
            num_classes=1000,
            pre_pool="conv_norm_act",
            pre_pool_width=1280,
            act="silu",
            norm_kwargs=BN_EPS_EFFICIENTNET,
            dropout=0.2,
        ),
        drop_path_rate=0.2,
        drop_path_schedule="index_over_total",
    )


@register_model
def convnext_tiny() -> NetworkSpec:
    """Patchify stem, LayerNorm eps 1e-6, a norm → 2×2/2 conv transition before stages 2-4,
    layer scale 1e-6, stochastic depth 0.1 over rate * i / (n_blocks - 1), pooled LayerNorm."""
    transition = {"norm": "layer", "norm_kwargs": LN_EPS_CONVNEXT}
    stages = [
        StageSpec(
            "convnext",
            width,
            depth,
            stride,
            kwargs={"norm_kwargs": LN_EPS_CONVNEXT},
            downsample="norm_conv" if stride > 1 else None,
            downsample_kwargs=transition if stride > 1 else {},
        )
        for width, depth, stride in ((96, 3, 1), (192, 3, 2), (384, 9, 2), (768, 3, 2))
    ]
    return NetworkSpec(
        stem=StemSpec("patchify", 96, {"patch_size": 4, **transition}),
        stages=stages,
        head=HeadSpec(num_classes=1000, pooled_norm="layer", norm_kwargs=LN_EPS_CONVNEXT),
        drop_path_rate=0.1,
        drop_path_schedule="linspace",
    )

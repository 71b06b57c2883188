"""build_network: one builder for every block family and every dimension."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models import NetworkSpec, build_network
from models.blocks import BLOCK_TYPES
from models.layers import DropPath, LayerNormNd
from models.spec import HeadSpec, StageSpec, StemSpec

SPATIAL = {1: (16,), 2: (8, 8), 3: (4, 4, 4)}
# Narrow widths every block family accepts (bottlenecks need multiples of 4).
FAMILY_KWARGS = {
    "basic": {},
    "bottleneck": {},
    "preact_basic": {},
    "preact_bottleneck": {},
    "convnext": {},
    "mbconv": {"expand_ratio": 2, "se_ratio": 0.25},
    "fused_mbconv": {"expand_ratio": 2},
    "dwsep": {},
    "mdnc_plain": {},
    "mdnc_bottleneck": {},
}


def two_stage_spec(block: str, dims: int, **fields) -> NetworkSpec:
    kwargs = FAMILY_KWARGS[block]
    return NetworkSpec(
        dims=dims,
        in_chans=2,
        stem=StemSpec("conv", 8, {"kernel_size": 3}),
        stages=[StageSpec(block, 8, 1, 1, kwargs), StageSpec(block, 16, 2, 2, kwargs)],
        head=HeadSpec(num_classes=5),
        **fields,
    )


def test_block_table_covers_every_registered_block_type():
    assert set(FAMILY_KWARGS) == set(BLOCK_TYPES)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("block", sorted(FAMILY_KWARGS))
def test_every_family_builds_in_every_dimension_and_returns_logits(block, dims):
    model = build_network(two_stage_spec(block, dims)).eval()
    x = torch.randn(2, 2, *SPATIAL[dims])
    features = model.forward_features(x)
    assert features.shape == (2, 16, *(size // 2 for size in SPATIAL[dims]))
    assert model(x).shape == (2, 5)
    assert all(type(b) is BLOCK_TYPES[block] for b in model.stages[1].blocks)


def test_gradients_reach_the_stem_in_training_mode():
    model = build_network(two_stage_spec("basic", 2)).train()
    model(torch.randn(4, 2, 16, 16)).sum().backward()
    assert model.stem.conv.weight.grad.abs().sum() > 0


def test_built_model_carries_its_spec():
    spec = two_stage_spec("basic", 1)
    assert build_network(spec).spec is spec


def test_first_block_of_a_stage_takes_the_stride_and_width_change():
    model = build_network(two_stage_spec("basic", 2))
    first, second = model.stages[1].blocks
    assert first.conv1.stride == (2, 2) and first.conv1.in_channels == 8
    assert second.conv1.stride == (1, 1) and second.conv1.in_channels == 16
    assert isinstance(second.shortcut, nn.Identity)


def test_stochastic_depth_rates_follow_the_spec_schedule():
    spec = two_stage_spec("basic", 2, drop_path_rate=0.3, drop_path_schedule="linspace")
    blocks = [block for stage in build_network(spec).stages for block in stage.blocks]
    rates = [
        block.drop_path.p if isinstance(block.drop_path, DropPath) else 0.0 for block in blocks
    ]
    assert rates == pytest.approx([0.0, 0.15, 0.3])


def test_resnet_stem_is_conv_norm_act_then_max_pool():
    spec = NetworkSpec(
        stem=StemSpec("conv", 8, {"kernel_size": 7, "stride": 2, "pool": True}),
        stages=[StageSpec("basic", 8, 1)],
    )
    stem = build_network(spec).stem
    assert [type(layer) for layer in stem] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    assert stem(torch.randn(1, 3, 32, 32)).shape == (1, 8, 8, 8)


def test_patchify_stem_and_norm_conv_transition_downsample_like_convnext():
    spec = NetworkSpec(
        stem=StemSpec("patchify", 8, {"patch_size": 4}),
        stages=[
            StageSpec("convnext", 8, 1),
            StageSpec("convnext", 16, 1, 2, downsample="norm_conv"),
        ],
        head=HeadSpec(num_classes=3, pooled_norm="layer"),
    )
    model = build_network(spec)
    norm, conv = model.stages[1].downsample
    assert isinstance(norm, LayerNormNd) and conv.kernel_size == conv.stride == (2, 2)
    assert model.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 16, 4, 4)
    assert isinstance(model.head.norm, LayerNormNd)


def test_mdnc_stem_is_an_mdnc_modern_conv():
    spec = NetworkSpec(
        dims=1,
        in_chans=1,
        stem=StemSpec("mdnc", 8, {"kernel_size": 5, "normalizer": "pinst", "layer_order": "old"}),
        stages=[StageSpec("mdnc_plain", 8, 1)],
    )
    stem = build_network(spec).stem
    assert [type(layer) for layer in stem] == [nn.Conv1d, nn.InstanceNorm1d, nn.PReLU]


def test_head_conv_norm_act_widens_features_before_pooling():
    spec = two_stage_spec("basic", 2).with_overrides(
        head={"pre_pool": "conv_norm_act", "pre_pool_width": 32, "act": "relu6", "dropout": 0.2}
    )
    model = build_network(spec)
    assert model.head.pre_pool.conv.out_channels == 32
    assert isinstance(model.head.pre_pool.act, nn.ReLU6)
    assert model.head.dropout.p == 0.2
    assert model.head.fc.in_features == 32


def test_head_norm_act_is_the_final_pre_activation():
    spec = two_stage_spec("preact_basic", 2).with_overrides(head={"pre_pool": "norm_act"})
    norm, act = build_network(spec).head.pre_pool
    assert isinstance(norm, nn.BatchNorm2d) and norm.num_features == 16
    assert isinstance(act, nn.ReLU)


def test_max_pool_head_takes_the_spatial_maximum():
    spec = two_stage_spec("basic", 1).with_overrides(head={"pool": "max"})
    assert isinstance(build_network(spec).head.pool, nn.AdaptiveMaxPool1d)


def test_unknown_component_names_raise_naming_the_spec_field():
    with pytest.raises(ValueError, match=r"stages\[1\]\.block: unknown block type 'basci'.*basic"):
        build_network(two_stage_spec("basic", 2).with_overrides(**{"stages.1.block": "basci"}))
    with pytest.raises(ValueError, match=r"stem\.kind: unknown stem 'stem'.*conv, mdnc"):
        build_network(two_stage_spec("basic", 2).with_overrides(stem={"kind": "stem"}))
    with pytest.raises(ValueError, match=r"stages\[0\]\.downsample: unknown downsample 'pool'"):
        build_network(two_stage_spec("basic", 2).with_overrides(**{"stages.0.downsample": "pool"}))
    with pytest.raises(ValueError, match=r"unknown normalizer 'bn'"):
        build_network(two_stage_spec("basic", 2).with_overrides(head={"norm": "bn"}))


def test_bad_block_kwargs_raise_naming_the_stage():
    spec = two_stage_spec("basic", 2).with_overrides(**{"stages.1.kwargs": {"groups": 2}})
    with pytest.raises(ValueError, match=r"stages\[1\] \('basic'.*groups"):
        build_network(spec)


def test_build_network_rejects_anything_but_a_spec():
    with pytest.raises(TypeError, match="expects a NetworkSpec, got dict"):
        build_network(two_stage_spec("basic", 2).to_dict())

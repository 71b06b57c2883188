"""Blocks (models.blocks): every block type in 1d / 2d / 3d, the MDNC seed examples and the
torchvision layouts the zoo depends on."""

import inspect
import io
import math
import pickle

import pytest
import torch
from torch import nn

from models.blocks import (
    BLOCK_TYPES,
    BasicBlock,
    BasicBlock1d,
    BasicBlock2d,
    BasicBlock3d,
    BlockBottleneck1d,
    BlockBottleneck2d,
    BlockBottleneck3d,
    BlockPlain1d,
    BlockPlain2d,
    BlockPlain3d,
    Bottleneck,
    Bottleneck2d,
    ConvModern1d,
    ConvModern2d,
    ConvModern3d,
    ConvNeXtBlock,
    DepthwiseSeparable,
    FusedMBConv,
    MBConv,
    MBConv2d,
    PreActBasicBlock,
    PreActBottleneck,
)
from models.layers import DropPath

DIMS = (1, 2, 3)
MDNC_BINDINGS = {
    "ConvModern": (ConvModern1d, ConvModern2d, ConvModern3d),
    "BlockPlain": (BlockPlain1d, BlockPlain2d, BlockPlain3d),
    "BlockBottleneck": (BlockBottleneck1d, BlockBottleneck2d, BlockBottleneck3d),
}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def x_of(channels: int, dims: int, size: int = 8, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, channels, *([size] * dims))


def leaf_rows(block: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...], int]]:
    """(type, output shape without batch, own params) of every leaf in forward-completion
    order, then the block itself: what a forward-hook summary lists."""
    rows = []

    def record(module, inputs, output):
        own = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append((type(module).__name__, tuple(output.shape[1:]), own))

    modules = [m for m in block.modules() if m is block or not list(m.children())]
    hooks = [m.register_forward_hook(record) for m in modules]
    block(x)
    for hook in hooks:
        hook.remove()
    return rows


# ---- closed-form parameter counts ----------------------------------------------------------
# Written from the architectures' definitions (k^d weights per conv filter, 2 affine params per
# BatchNorm / affine InstanceNorm / LayerNorm channel, biases only where stated).


def basic_params(i, o, s, d, k=3):
    proj = i * o + 2 * o if s != 1 or i != o else 0
    return k**d * i * o + 2 * o + k**d * o * o + 2 * o + proj


def bottleneck_params(i, o, s, d, k=3, groups=1, base_width=64):
    w = int(o // 4 * base_width / 64) * groups
    proj = i * o + 2 * o if s != 1 or i != o else 0
    return i * w + 2 * w + k**d * w * w // groups + 2 * w + w * o + 2 * o + proj


def preact_basic_params(i, o, s, d, k=3):
    proj = i * o if s != 1 or i != o else 0
    return 2 * i + k**d * i * o + 2 * o + k**d * o * o + proj


def preact_bottleneck_params(i, o, s, d, k=3):
    w = o // 4
    proj = i * o if s != 1 or i != o else 0
    return 2 * i + i * w + 2 * w + k**d * w * w + 2 * w + w * o + proj


def convnext_params(i, o, s, d, k=7):
    down = 2 * i + s**d * i * o + o if s != 1 or i != o else 0
    dw = k**d * o + o
    mlp = o * 4 * o + 4 * o + 4 * o * o + o
    return down + dw + 2 * o + mlp + o  # + layer scale


def se_params(c, squeeze):
    return c * squeeze + squeeze + squeeze * c + c


def mbconv_params(i, o, s, d, k=3, mid=None, squeeze=0):
    mid = mid if mid is not None else 6 * i
    expand = i * mid + 2 * mid if mid != i else 0
    se = se_params(mid, squeeze) if squeeze else 0
    return expand + k**d * mid + 2 * mid + se + mid * o + 2 * o


def fused_params(i, o, s, d, k=3, mid=None):
    mid = mid if mid is not None else 4 * i
    if mid == i:
        return k**d * i * o + 2 * o
    return k**d * i * mid + 2 * mid + mid * o + 2 * o


def dwsep_params(i, o, s, d, k=3):
    return k**d * i + 2 * i + i * o + 2 * o


def mdnc_plain_params(i, o, s, d, k=3):
    pre_act = 2 * i + i  # pinst + prelu on the conv input
    proj = i * o + 2 * o if s != 1 or i != o else 0
    return pre_act + k**d * i * i + pre_act + k**d * i * o + proj


def mdnc_bottleneck_params(i, o, s, d, k=3):
    pre_act = 2 * i + i
    proj = i * o + 2 * o if s != 1 or i != o else 0
    return pre_act + i * i + pre_act + k**d * i * i + pre_act + i * o + proj


CLOSED_FORM = {
    "basic": basic_params,
    "bottleneck": bottleneck_params,
    "preact_basic": preact_basic_params,
    "preact_bottleneck": preact_bottleneck_params,
    "convnext": convnext_params,
    "mbconv": mbconv_params,
    "fused_mbconv": fused_params,
    "dwsep": dwsep_params,
    "mdnc_plain": mdnc_plain_params,
    "mdnc_bottleneck": mdnc_bottleneck_params,
}


def test_block_types_registers_every_family():
    assert set(BLOCK_TYPES) == {
        "basic",
        "bottleneck",
        "preact_basic",
        "preact_bottleneck",
        "convnext",
        "mbconv",
        "fused_mbconv",
        "dwsep",
        "mdnc_plain",
        "mdnc_bottleneck",
    }
    assert set(BLOCK_TYPES) == set(CLOSED_FORM)


# ---- every block × every dim ----------------------------------------------------------------


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("name", sorted(BLOCK_TYPES))
def test_stride_two_halves_every_spatial_dim_and_sets_out_channels(name, dims):
    block = BLOCK_TYPES[name](8, 16, 2, dims=dims)
    assert block(x_of(8, dims, size=8)).shape == (2, 16, *([4] * dims))
    odd = 3 if name == "convnext" else 4  # ConvNeXt patchifies (k = s = 2); others pad
    assert block(x_of(8, dims, size=7)).shape == (2, 16, *([odd] * dims))


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("name", sorted(BLOCK_TYPES))
def test_stride_one_same_width_keeps_the_shape(name, dims):
    block = BLOCK_TYPES[name](16, 16, 1, dims=dims)
    x = x_of(16, dims, size=5)
    assert block(x).shape == x.shape


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("name", sorted(BLOCK_TYPES))
def test_gradient_reaches_every_parameter(name, dims):
    torch.manual_seed(0)
    block = BLOCK_TYPES[name](8, 16, 2, dims=dims).train()
    out = block(x_of(8, dims, size=6))
    (out * torch.randn_like(out)).sum().backward()  # a plain sum cancels through norms
    for param_name, param in block.named_parameters():
        assert param.grad is not None, f"{param_name} got no gradient"
        assert param.grad.abs().sum() > 0, f"{param_name} got a zero gradient"


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize(("in_chs", "out_chs", "stride"), [(8, 16, 2), (16, 16, 1), (16, 8, 1)])
@pytest.mark.parametrize("name", sorted(BLOCK_TYPES))
def test_parameter_count_matches_the_closed_form(name, in_chs, out_chs, stride, dims):
    block = BLOCK_TYPES[name](in_chs, out_chs, stride, dims=dims)
    assert n_params(block) == CLOSED_FORM[name](in_chs, out_chs, stride, dims)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", sorted(BLOCK_TYPES))
def test_blocks_are_torchscript_compatible(name):
    block = BLOCK_TYPES[name](8, 16, 2, dims=2, drop_path=0.1).eval()
    x = x_of(8, 2)
    torch.testing.assert_close(torch.jit.script(block)(x), block(x))


@pytest.mark.parametrize("name", sorted(BLOCK_TYPES))
def test_drop_path_one_leaves_only_the_identity_path_in_training(name):
    block = BLOCK_TYPES[name](16, 16, 1, dims=1, drop_path=1.0).train()
    assert isinstance(block.drop_path, DropPath)
    x = x_of(16, 1).abs() + 1  # positive, so a ReLU after the merge is the identity too
    torch.testing.assert_close(block(x), x)


@pytest.mark.parametrize("name", sorted(BLOCK_TYPES))
def test_drop_path_is_only_registered_when_positive(name):
    assert BLOCK_TYPES[name](16, 16, 1, dims=1).drop_path is None


@pytest.mark.parametrize(
    ("cls", "bindings"),
    [
        (BasicBlock, (BasicBlock1d, BasicBlock2d, BasicBlock3d)),
        (Bottleneck, (None, Bottleneck2d, None)),
        (MBConv, (None, MBConv2d, None)),
    ],
)
def test_dim_bindings_are_named_subclasses_fixing_dims(cls, bindings):
    for dims, binding in zip(DIMS, bindings, strict=True):
        if binding is None:
            continue
        assert issubclass(binding, cls)
        assert binding.__name__ == f"{cls.__name__}{dims}d"
        out_chs = 16
        block = binding(8, out_chs, 2)
        assert block(x_of(8, dims)).shape == (2, out_chs, *([4] * dims))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: BasicBlock(0, 8), "in_chs must be a positive int"),
        (lambda: BasicBlock(8, 8, 0), "stride must be a positive int"),
        (lambda: BasicBlock(8, 8, dims=4), "dims must be one of"),
        (lambda: MBConv(8, 8, drop_path=-0.1), "drop_path must be in"),
        (lambda: BasicBlock(8, 8, norm_layer="group"), "allowed values"),
        (lambda: Bottleneck(8, 18), "multiple of 4"),
        (lambda: MBConv(8, 8, channel_rounding="floor"), "channel_rounding"),
        (lambda: MBConv(8, 8, expand_ratio=0), "expand_ratio must be > 0"),
        (lambda: BlockPlain1d(8, 8, activator="tanh"), "allowed values"),
        (lambda: BlockPlain1d(8, 8, layer_order="middle"), "layer_order"),
        (lambda: BlockPlain1d(8, 8, scaler="sideways"), "scaler"),
        (lambda: BlockPlain1d(8, 8, output_size=9), "output_size is only used"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---- shortcuts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["basic", "bottleneck", "convnext", "mdnc_plain", "mdnc_bottleneck"]
)
def test_identity_shortcut_when_shapes_match(name):
    assert type(BLOCK_TYPES[name](16, 16, 1, dims=2).shortcut) is nn.Identity


@pytest.mark.parametrize("name", ["basic", "bottleneck", "preact_basic", "preact_bottleneck"])
def test_projection_shortcut_when_stride_or_width_changes(name):
    for in_chs, stride in [(8, 1), (16, 2)]:
        shortcut = BLOCK_TYPES[name](in_chs, 16, stride, dims=2).shortcut
        conv = shortcut[0]
        assert (conv.kernel_size, conv.stride, conv.bias) == ((1, 1), (stride, stride), None)


@pytest.mark.parametrize("name", ["mbconv", "fused_mbconv", "dwsep"])
def test_mobile_blocks_have_no_residual_path_when_shapes_change(name):
    assert BLOCK_TYPES[name](8, 16, 1, dims=2).shortcut is None
    assert BLOCK_TYPES[name](16, 16, 2, dims=2).shortcut is None
    assert type(BLOCK_TYPES[name](16, 16, 1, dims=2).shortcut) is nn.Identity


# ---- ResNet family (torchvision layouts) ------------------------------------------------------


def test_basic_block_state_dict_follows_torchvision_order():
    keys = [k.split(".")[0] for k in BasicBlock2d(8, 16, 2).state_dict()]
    assert list(dict.fromkeys(keys)) == ["conv1", "bn1", "conv2", "bn2", "shortcut"]


def test_bottleneck_state_dict_follows_torchvision_order():
    keys = [k.split(".")[0] for k in Bottleneck2d(8, 32, 2).state_dict()]
    assert list(dict.fromkeys(keys)) == ["conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "shortcut"]


@pytest.mark.parametrize(
    ("groups", "base_width", "width"),
    [(1, 64, 64), (32, 4, 128), (1, 128, 128)],  # resnet50, resnext50_32x4d, wide_resnet50_2
)
def test_bottleneck_inner_width_follows_torchvision(groups, base_width, width):
    block = Bottleneck2d(256, 256, groups=groups, base_width=base_width)
    assert block.conv2.in_channels == block.conv2.out_channels == width
    assert block.conv2.groups == groups


def test_bottleneck_dilation_keeps_the_size():
    block = Bottleneck2d(16, 16, dilation=2)
    assert block.conv2.dilation == (2, 2) and block.conv2.padding == (2, 2)
    assert block(x_of(16, 2)).shape == (2, 16, 8, 8)


def test_resnet_blocks_activate_after_the_add():
    for cls in (BasicBlock, Bottleneck):
        assert cls(16, 16, dims=1)(x_of(16, 1)).min() >= 0


def test_preact_blocks_add_without_activation():
    for cls in (PreActBasicBlock, PreActBottleneck):
        assert cls(16, 16, dims=1)(x_of(16, 1)).min() < 0


def test_preact_projection_reads_the_pre_activated_input():
    block = PreActBasicBlock(8, 16, 2, dims=1).eval()
    x = x_of(8, 1)
    pre = block.act1(block.bn1(x))
    branch = block.conv2(block.act2(block.bn2(block.conv1(pre))))
    torch.testing.assert_close(block(x), branch + block.shortcut(pre))


def test_convs_drop_their_bias_only_when_a_norm_follows():
    with_norm = BasicBlock(8, 8, dims=1)
    without_norm = BasicBlock(8, 16, dims=1, norm_layer="null")
    assert with_norm.conv1.bias is None
    assert without_norm.conv1.bias is not None and without_norm.shortcut[0].bias is not None


def test_norm_kwargs_reach_every_norm():
    block = MBConv(16, 16, dims=2, norm_kwargs={"eps": 1e-3})
    epses = {m.eps for m in block.modules() if isinstance(m, nn.BatchNorm2d)}
    assert epses == {1e-3}


# ---- ConvNeXt --------------------------------------------------------------------------------


@pytest.mark.parametrize("dims", DIMS)
def test_convnext_layer_scale_has_one_value_per_channel(dims):
    block = ConvNeXtBlock(16, 16, dims=dims)
    assert block.layer_scale.shape == (16, *([1] * dims))
    assert torch.all(block.layer_scale == 1e-6)
    assert block.norm.eps == 1e-6 and block.conv_dw.groups == 16


def test_convnext_downsamples_with_norm_then_strided_conv_when_shapes_change():
    block = ConvNeXtBlock(8, 16, 2, dims=2)
    norm, conv = block.downsample
    assert norm.eps == 1e-6
    assert (conv.kernel_size, conv.stride, conv.bias is not None) == ((2, 2), (2, 2), True)
    assert ConvNeXtBlock(16, 16, dims=2).downsample is None


def test_convnext_block_is_the_torchvision_computation():
    block = ConvNeXtBlock(8, 8, dims=2).eval()
    with torch.no_grad():
        block.layer_scale.fill_(0.5)
    x = x_of(8, 2)
    y = nn.functional.layer_norm(block.conv_dw(x).permute(0, 2, 3, 1), (8,), eps=1e-6)
    y = block.pwconv2(nn.functional.gelu(block.pwconv1(y))).permute(0, 3, 1, 2)
    torch.testing.assert_close(block(x), x + 0.5 * y)


# ---- mobile blocks ----------------------------------------------------------------------------


def test_mbconv_expanded_width_rounding_modes():
    assert MBConv(20, 20, expand_ratio=2.5, channel_rounding="round").conv_dw.conv.groups == 50
    assert MBConv(20, 20, expand_ratio=2.5, channel_rounding="divisible").conv_dw.conv.groups == 48


def test_mbconv_skips_expansion_at_ratio_one():
    block = MBConv(32, 16, expand_ratio=1, act_layer="relu6", channel_rounding="round")
    assert block.conv_pw is None
    assert isinstance(block.conv_dw.act, nn.ReLU6)
    assert not hasattr(block.conv_pwl, "act"), "linear bottleneck: no activation"
    # torchvision mobilenet_v2 features[1]: dw 3x3 + BN, project 1x1 + BN
    assert n_params(block) == 32 * 9 + 64 + 32 * 16 + 32


def test_mbconv_squeeze_excitation_width_comes_from_the_block_input():
    block = MBConv(16, 16, expand_ratio=4, se_ratio=0.25)
    assert (block.se.fc1.in_channels, block.se.fc1.out_channels) == (64, 4)
    assert block.se.fc1.bias is not None and isinstance(block.se.activation, nn.SiLU)


def test_fused_mbconv_without_expansion_is_a_single_conv_norm_act():
    block = FusedMBConv(24, 24, expand_ratio=1, dims=2)
    assert block.conv_pwl is None
    conv = block.conv_exp.conv
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (24, 24, (3, 3))
    assert isinstance(block.conv_exp.act, nn.SiLU)


def test_dwsep_is_depthwise_then_pointwise():
    block = DepthwiseSeparable(8, 16, dims=2)
    assert block.conv_dw.conv.groups == 8 and block.conv_pw.conv.kernel_size == (1, 1)
    assert not hasattr(block.conv_pw, "act")


# ---- MDNC blocks ------------------------------------------------------------------------------

SEED_EXAMPLE_1 = [  # mdnc-BlockBottleneck1d.txt, Example 1
    ("InstanceNorm1d", (16, 255), 32),
    ("PReLU", (16, 255), 16),
    ("Conv1d", (16, 255), 256),
    ("InstanceNorm1d", (16, 255), 32),
    ("PReLU", (16, 255), 16),
    ("Conv1d", (16, 128), 768),
    ("InstanceNorm1d", (16, 128), 32),
    ("PReLU", (16, 128), 16),
    ("Conv1d", (32, 128), 512),
    ("Conv1d", (32, 128), 512),
    ("InstanceNorm1d", (32, 128), 64),
    ("BlockBottleneck1d", (32, 128), 0),
]
SEED_EXAMPLE_2 = [  # mdnc-BlockBottleneck1d.txt, Example 2
    ("InstanceNorm1d", (32, 128), 64),
    ("PReLU", (32, 128), 32),
    ("Conv1d", (32, 128), 1024),
    ("InstanceNorm1d", (32, 128), 64),
    ("PReLU", (32, 128), 32),
    ("Upsample", (32, 255), 0),
    ("Conv1d", (32, 255), 3072),
    ("InstanceNorm1d", (32, 255), 64),
    ("PReLU", (32, 255), 32),
    ("Conv1d", (16, 255), 512),
    ("Upsample", (32, 255), 0),
    ("Conv1d", (16, 255), 512),
    ("InstanceNorm1d", (16, 255), 32),
    ("BlockBottleneck1d", (16, 255), 0),
]


def test_seed_example_1_downsampling_bottleneck():
    block = BlockBottleneck1d(16, 32, kernel_size=3, stride=2, padding=1)
    assert block(torch.randn(2, 16, 255)).shape == (2, 32, 128)
    assert n_params(block) == 2256
    assert leaf_rows(block, torch.randn(2, 16, 255)) == SEED_EXAMPLE_1


def test_seed_example_2_upsampling_bottleneck_to_output_size():
    block = BlockBottleneck1d(
        32, 16, kernel_size=3, stride=2, padding=1, output_size=255, scaler="up"
    )
    assert block(torch.randn(2, 32, 128)).shape == (2, 16, 255)
    assert n_params(block) == 5440
    assert leaf_rows(block, torch.randn(2, 32, 128)) == SEED_EXAMPLE_2


@pytest.mark.parametrize("family", sorted(MDNC_BINDINGS))
def test_mdnc_bindings_keep_the_exact_mdnc_signature(family):
    expected = [
        ("in_planes", inspect.Parameter.empty),
        ("out_planes", inspect.Parameter.empty),
        ("kernel_size", 3),
        ("stride", 1),
        ("padding", 1),
        ("output_size", None),
        ("normalizer", "pinst"),
        ("activator", "prelu"),
        ("layer_order", "new"),
        ("scaler", "down"),
    ]
    for dims, binding in zip(DIMS, MDNC_BINDINGS[family], strict=True):
        assert binding.__name__ == f"{family}{dims}d"
        params = inspect.signature(binding).parameters.values()
        assert [(p.name, p.default) for p in params] == expected


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("family", ["BlockPlain", "BlockBottleneck"])
def test_mdnc_blocks_scale_down_and_up_in_every_dim(family, dims):
    binding = MDNC_BINDINGS[family][dims - 1]
    down = binding(4, 8, stride=2)
    assert down(x_of(4, dims, size=7)).shape == (2, 8, *([4] * dims))
    up = binding(8, 4, stride=2, scaler="up")
    assert up(x_of(8, dims, size=4)).shape == (2, 4, *([8] * dims))
    to_size = binding(8, 4, stride=2, scaler="up", output_size=7)
    assert to_size(x_of(8, dims, size=4)).shape == (2, 4, *([7] * dims))


@pytest.mark.parametrize("dims", DIMS)
def test_mdnc_upsampling_interpolates_with_aligned_corners(dims):
    block = MDNC_BINDINGS["BlockPlain"][dims - 1](8, 8, stride=2, scaler="up")
    upsample = block.conv2[2]
    assert isinstance(upsample, nn.Upsample) and upsample.align_corners is True
    assert upsample.mode == ("linear", "bilinear", "trilinear")[dims - 1]
    assert block.conv2[3].stride == (1,) * dims


@pytest.mark.parametrize("dims", DIMS)
def test_mdnc_parameter_counts_match_the_closed_form_in_every_dim(dims):
    plain = MDNC_BINDINGS["BlockPlain"][dims - 1](6, 10, kernel_size=5, stride=2, padding=2)
    assert n_params(plain) == mdnc_plain_params(6, 10, 2, dims, k=5)
    bottleneck = MDNC_BINDINGS["BlockBottleneck"][dims - 1](6, 10, kernel_size=5, padding=2)
    assert n_params(bottleneck) == mdnc_bottleneck_params(6, 10, 1, dims, k=5)


def test_mdnc_layer_orders():
    new = [type(m).__name__ for m in ConvModern2d(4, 8)]
    old = [type(m).__name__ for m in ConvModern2d(4, 8, layer_order="old")]
    assert new == ["InstanceNorm2d", "PReLU", "Conv2d"]
    assert old == ["Conv2d", "InstanceNorm2d", "PReLU"]
    assert ConvModern2d(4, 8)[1].weight.shape == (4,)
    assert ConvModern2d(4, 8, layer_order="old")[2].weight.shape == (8,)


def test_mdnc_null_normalizer_is_biased_conv_then_activation():
    for order in ("new", "old"):
        layer = ConvModern1d(4, 8, normalizer="null", layer_order=order)
        assert [type(m).__name__ for m in layer] == ["Conv1d", "PReLU"]
        assert layer[0].bias is not None
    shortcut = BlockPlain1d(4, 8, normalizer="null").shortcut
    assert [type(m).__name__ for m in shortcut] == ["Conv1d"] and shortcut[0].bias is not None


def test_mdnc_convs_have_no_bias_with_a_norm():
    block = BlockBottleneck2d(4, 8, stride=2)
    assert all(m.bias is None for m in block.modules() if isinstance(m, nn.Conv2d))


def test_mdnc_shortcut_projects_only_when_scaling_or_changing_width():
    assert type(BlockPlain1d(8, 8).shortcut) is nn.Identity
    assert type(BlockPlain1d(8, 8, scaler="up").shortcut) is nn.Identity
    assert [type(m).__name__ for m in BlockPlain1d(8, 8, stride=2).shortcut] == [
        "Conv1d",
        "InstanceNorm1d",
    ]
    assert [type(m).__name__ for m in BlockPlain1d(8, 4, scaler="up", stride=2).shortcut] == [
        "Upsample",
        "Conv1d",
        "InstanceNorm1d",
    ]


def test_mdnc_block_adds_without_activation():
    block = BlockBottleneck1d(8, 16, stride=2).eval()
    x = x_of(8, 1)
    branch = block.conv3(block.conv2(block.conv1(x)))
    torch.testing.assert_close(block(x), branch + block.shortcut(x))


def test_mdnc_stage_block_uses_the_uniform_constructor():
    block = BLOCK_TYPES["mdnc_bottleneck"](8, 16, 2, dims=1, kernel_size=5)
    assert block.conv2[2].kernel_size == (5,) and block.conv2[2].padding == (2,)
    assert math.isclose(BLOCK_TYPES["mdnc_plain"](8, 8, 1, dims=1, drop_path=0.2).drop_path.p, 0.2)


# ---- portability --------------------------------------------------------------------------------


def test_dim_bindings_pickle_by_name_and_show_the_signature_without_dims():
    block = pickle.loads(pickle.dumps(BasicBlock2d(8, 16, 2)))
    assert type(block) is BasicBlock2d
    params = inspect.signature(BasicBlock2d).parameters
    assert list(params)[:3] == ["in_chs", "out_chs", "stride"] and "dims" not in params


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("dims", DIMS)
def test_channels_last_layers_export_to_onnx(dims):
    ort = pytest.importorskip("onnxruntime")
    block = ConvNeXtBlock(8, 16, 2, dims=dims).eval()
    x = x_of(8, dims, size=4)
    buffer = io.BytesIO()
    torch.onnx.export(block, (x,), buffer, dynamo=False, input_names=["x"])
    session = ort.InferenceSession(buffer.getvalue())
    (out,) = session.run(None, {"x": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), block(x), rtol=1e-4, atol=1e-5)

"""Layers by name (models.layers): norms, activations, N-d helpers and DropPath."""

import pytest
import torch
from torch import nn

from models.layers import (
    ACTIVATORS,
    NORMALIZERS,
    DropPath,
    LayerNormNd,
    conv_type,
    make_act,
    make_norm,
    resolve_act,
    resolve_norm,
    upsample_mode,
)

DIMS = (1, 2, 3)


def _input(channels: int, dims: int, batch: int = 2, size: int = 5) -> torch.Tensor:
    return torch.randn(batch, channels, *([size] * dims))


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize(
    ("name", "type_name", "param_count"),
    [
        ("batch", "BatchNorm{d}d", 2 * 6),
        ("inst", "InstanceNorm{d}d", 0),
        ("pinst", "InstanceNorm{d}d", 2 * 6),
        ("layer", "LayerNormNd", 2 * 6),
        ("null", "Identity", 0),
    ],
)
def test_make_norm_builds_the_named_norm_for_each_dim(dims, name, type_name, param_count):
    norm = make_norm(name, 6, dims)
    assert type(norm).__name__ == type_name.format(d=dims)
    assert sum(p.numel() for p in norm.parameters()) == param_count
    assert norm(_input(6, dims)).shape == _input(6, dims).shape


def test_inst_is_not_affine_and_pinst_is_affine():
    assert make_norm("inst", 4, 1).affine is False
    pinst = make_norm("pinst", 4, 1)
    assert pinst.affine is True
    assert pinst.weight.shape == (4,) and pinst.bias.shape == (4,)


def test_make_norm_passes_kwargs_to_the_torch_layer():
    norm = make_norm("batch", 3, 2, eps=1e-3, momentum=0.01)
    assert (norm.eps, norm.momentum) == (1e-3, 0.01)


@pytest.mark.parametrize("dims", DIMS)
def test_layer_norm_nd_normalizes_over_channels_only(dims):
    x = _input(6, dims) * 3 + 1
    out = LayerNormNd(6, eps=1e-6)(x)
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    torch.testing.assert_close(out, (x - mean) / torch.sqrt(var + 1e-6))


@pytest.mark.parametrize(
    ("name", "act_type"),
    [
        ("relu", nn.ReLU),
        ("prelu", nn.PReLU),
        ("gelu", nn.GELU),
        ("silu", nn.SiLU),
        ("relu6", nn.ReLU6),
        ("hardswish", nn.Hardswish),
        ("null", nn.Identity),
    ],
)
def test_make_act_builds_the_plain_torch_activation(name, act_type):
    assert type(make_act(name, 3)) is act_type


def test_prelu_has_one_slope_per_channel():
    prelu = make_act("prelu", 3)
    assert prelu.weight.shape == (3,)
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor([0.1, 0.2, 0.3]))
    out = prelu(-torch.ones(1, 3, 4))
    torch.testing.assert_close(out[0, :, 0], torch.tensor([-0.1, -0.2, -0.3]))


@pytest.mark.parametrize(
    ("call", "allowed"),
    [
        (lambda: make_norm("group", 4, 2), NORMALIZERS),
        (lambda: make_act("tanh", 4), ACTIVATORS),
        (lambda: resolve_norm("instance", 2), NORMALIZERS),
        (lambda: resolve_act("swish"), ACTIVATORS),
    ],
)
def test_unknown_names_raise_value_error_listing_the_allowed_values(call, allowed):
    with pytest.raises(ValueError) as error:
        call()
    for name in allowed:
        assert name in str(error.value)


@pytest.mark.parametrize("dims", DIMS)
def test_conv_type_and_upsample_mode_follow_dims(dims):
    assert conv_type(dims) is (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
    assert upsample_mode(dims) == ("linear", "bilinear", "trilinear")[dims - 1]


@pytest.mark.parametrize("dims", [0, 4, True])
def test_unsupported_dims_raise_value_error(dims):
    with pytest.raises(ValueError, match="dims must be one of"):
        conv_type(dims)
    with pytest.raises(ValueError, match="dims must be one of"):
        make_norm("batch", 4, dims)


def test_resolve_norm_accepts_a_factory_and_applies_norm_kwargs():
    norm = resolve_norm(nn.BatchNorm2d, 2, {"eps": 1e-3})(8)
    assert isinstance(norm, nn.BatchNorm2d) and norm.eps == 1e-3
    assert isinstance(resolve_act(nn.SiLU)(), nn.SiLU)


def test_drop_path_is_identity_in_eval():
    drop = DropPath(0.9).eval()
    x = torch.randn(8, 3, 4)
    assert torch.equal(drop(x), x)


def test_drop_path_drops_whole_samples_and_rescales_survivors_in_train():
    torch.manual_seed(0)
    drop = DropPath(0.5).train()
    x = torch.randn(64, 3, 4, 4) + 5  # no zero entries
    out = drop(x)
    dropped = (out == 0).flatten(1).all(dim=1)
    kept = torch.isclose(out, x / 0.5).flatten(1).all(dim=1)
    assert torch.all(dropped ^ kept), "every sample is either fully dropped or fully kept"
    assert 0 < dropped.sum() < 64


def test_drop_path_with_probability_one_zeroes_and_zero_is_identity():
    x = torch.randn(4, 2, 3)
    assert torch.equal(DropPath(1.0).train()(x), torch.zeros_like(x))
    assert torch.equal(DropPath(0.0).train()(x), x)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_drop_path_rejects_probabilities_outside_unit_interval(p):
    with pytest.raises(ValueError, match="drop path probability"):
        DropPath(p)

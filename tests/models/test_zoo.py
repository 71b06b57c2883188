"""The zoo: torchvision parameter counts, torchvision eps / dropout / stochastic depth, and
the small and MDNC models on their own input sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models import create_model, model_default_cfg, model_spec
from models.blocks import BLOCK_TYPES
from models.layers import LayerNormNd

TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "wide_resnet50_2": 68_883_240,
    "mobilenet_v2": 3_504_872,
    "efficientnet_v2_s": 21_458_488,
    "convnext_tiny": 28_589_128,
}
SMALL = ["resnet_tiny", "resnet_digits", "resnet_mnist", "mdnc_encoder1d", "mdnc_encoder2d"]


def meta_model(name: str, **overrides) -> nn.Module:
    """The model built on the meta device: full structure, no memory, no init cost."""
    with torch.device("meta"):
        return create_model(name, **overrides)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("name", "params"), TORCHVISION_PARAMS.items())
def test_parameter_count_equals_torchvision(name, params):
    assert count_params(meta_model(name)) == params


def test_preact_resnets_differ_from_resnets_only_by_norm_placement():
    # Same convs and fc; pre-activation norms sit on block inputs, plus one final norm.
    assert count_params(meta_model("preact_resnet18")) == 11_687_848
    assert count_params(meta_model("preact_resnet50")) == 25_549_480


def norms(model: nn.Module, kind: type[nn.Module]) -> list[nn.Module]:
    return [module for module in model.modules() if isinstance(module, kind)]


def test_efficientnet_v2_s_uses_torchvision_eps_dropout_and_stochastic_depth():
    model = meta_model("efficientnet_v2_s")
    batch_norms = norms(model, nn.BatchNorm2d)
    assert batch_norms and {norm.eps for norm in batch_norms} == {1e-3}
    assert [type(m) for m in model.modules() if isinstance(m, nn.SiLU)]
    assert model.head.dropout.p == 0.2
    blocks = [block for stage in model.stages for block in stage.blocks]
    assert len(blocks) == 40
    # Stochastic depth only acts on residual blocks (stride 1, same width), as in torchvision.
    residual = [(i, block) for i, block in enumerate(blocks) if block.shortcut is not None]
    assert [block.drop_path.p for i, block in residual[1:]] == pytest.approx(
        [0.2 * i / 40 for i, _ in residual[1:]]
    )


def test_convnext_tiny_uses_torchvision_eps_layer_scale_and_stochastic_depth():
    model = meta_model("convnext_tiny")
    layer_norms = norms(model, nn.LayerNorm)
    assert len(layer_norms) == 1 + 18 + 3 + 1  # stem, blocks, transitions, head
    assert {norm.eps for norm in layer_norms} == {1e-6}
    assert isinstance(model.head.norm, LayerNormNd) and model.head.dropout is None
    blocks = [block for stage in model.stages for block in stage.blocks]
    rates = [block.drop_path.p if block.drop_path is not None else 0.0 for block in blocks]
    assert rates == pytest.approx([0.1 * i / 17 for i in range(18)])


def test_mobilenet_v2_uses_relu6_and_dropout_0_2():
    model = meta_model("mobilenet_v2")
    assert not norms(model, nn.ReLU) and norms(model, nn.ReLU6)
    assert model.head.dropout.p == 0.2 and model.head.fc.in_features == 1280


def test_resnets_have_no_dropout_and_no_stochastic_depth():
    model = meta_model("resnet50")
    assert model.head.dropout is None
    assert all(block.drop_path is None for stage in model.stages for block in stage.blocks)


@pytest.mark.parametrize("name", SMALL)
def test_small_models_classify_their_default_input_size(name):
    cfg = model_default_cfg(name)
    model = create_model(name).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, *cfg.input_size))
    assert logits.shape == (2, cfg.num_classes)
    assert torch.isfinite(logits).all()


def test_resnet_digits_is_small_and_keeps_the_8x8_resolution_in_its_first_stage():
    model = create_model("resnet_digits").eval()
    assert 50_000 <= count_params(model) <= 150_000
    with torch.no_grad():
        first_stage = model.stages[0](model.stem(torch.randn(1, 1, 8, 8)))
    assert first_stage.shape[-2:] == (8, 8)


def test_resnet_mnist_takes_28x28_grayscale():
    assert model_default_cfg("resnet_mnist").input_size == (1, 28, 28)
    assert model_spec("resnet_mnist").in_chans == 1


@pytest.mark.parametrize(("name", "dims"), [("mdnc_encoder1d", 1), ("mdnc_encoder2d", 2)])
def test_mdnc_encoders_are_built_from_mdnc_blocks(name, dims):
    model = create_model(name)
    assert model.spec.dims == dims
    mdnc_types = (BLOCK_TYPES["mdnc_plain"], BLOCK_TYPES["mdnc_bottleneck"])
    blocks = [block for stage in model.stages for block in stage.blocks]
    assert blocks and all(isinstance(block, mdnc_types) for block in blocks)
    assert isinstance(model.head.pre_pool[1], nn.PReLU)

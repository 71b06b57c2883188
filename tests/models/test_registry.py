"""Registry: names, lookups with suggestions, overrides and default configs."""

from __future__ import annotations

import pytest
import torch

from models import (
    NetworkSpec,
    create_model,
    list_models,
    model_default_cfg,
    model_spec,
    register_model,
    registry,
)
from models.spec import SpecError, StageSpec

ZOO = [
    "convnext_tiny",
    "efficientnet_v2_s",
    "mdnc_encoder1d",
    "mdnc_encoder2d",
    "mobilenet_v2",
    "preact_resnet18",
    "preact_resnet50",
    "resnet101",
    "resnet152",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet_digits",
    "resnet_mnist",
    "resnet_tiny",
    "resnext50_32x4d",
    "wide_resnet50_2",
]


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry that tests may register into."""
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))


def test_list_models_returns_the_whole_zoo_sorted():
    assert list_models() == ZOO


def test_list_models_filters_with_fnmatch_wildcards():
    assert list_models("resnet1*") == ["resnet101", "resnet152", "resnet18"]
    assert list_models("*_v2*") == ["efficientnet_v2_s", "mobilenet_v2"]
    assert list_models("mdnc_encoder?d") == ["mdnc_encoder1d", "mdnc_encoder2d"]
    assert list_models("vit*") == []


@pytest.mark.parametrize("lookup", [create_model, model_spec, model_default_cfg])
def test_unknown_names_raise_key_error_suggesting_the_closest(lookup):
    with pytest.raises(KeyError, match=r"unknown model 'resnet19'; did you mean 'resnet18'"):
        lookup("resnet19")


def test_unknown_name_without_close_match_points_to_list_models():
    with pytest.raises(KeyError, match=r"unknown model 'xyz' \(list_models\(\) shows all\)"):
        model_spec("xyz")


def test_create_model_applies_num_classes_and_in_chans_overrides():
    model = create_model("resnet_tiny", num_classes=3, in_chans=1).eval()
    assert model.spec.num_classes == 3 and model.spec.in_chans == 1
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 3)


def test_create_model_applies_any_spec_field_override():
    model = create_model("resnet_tiny", drop_path_rate=0.1, **{"stages.2.depth": 2})
    assert len(model.stages[2].blocks) == 2
    assert model.stages[2].blocks[1].drop_path.p == pytest.approx(0.1)


def test_unknown_override_keys_are_refused():
    with pytest.raises(TypeError, match="unknown override 'classes'"):
        create_model("resnet_tiny", classes=3)


def test_invalid_override_values_name_the_field():
    with pytest.raises(SpecError, match=r"^in_chans: must be >= 1"):
        create_model("resnet_tiny", in_chans=0)


def test_model_spec_returns_a_fresh_copy_each_call():
    spec = model_spec("resnet_tiny")
    spec.stages[0].depth = 9
    assert model_spec("resnet_tiny").stages[0].depth == 1


def test_registered_function_name_is_the_model_name(scratch_registry):
    @register_model
    def my_net() -> NetworkSpec:
        return NetworkSpec(stages=[StageSpec("basic", 8, 1)])

    assert "my_net" in list_models()
    assert my_net(num_classes=4).num_classes == 4
    assert create_model("my_net").spec == my_net()


def test_registering_a_name_twice_is_refused(scratch_registry):
    with pytest.raises(ValueError, match="'resnet18' is already registered"):

        @register_model
        def resnet18() -> NetworkSpec:
            return NetworkSpec(stages=[StageSpec("basic", 8, 1)])


@pytest.mark.parametrize("name", ZOO)
def test_every_model_has_a_default_cfg_consistent_with_its_spec(name):
    cfg, spec = model_default_cfg(name), model_spec(name)
    assert cfg.input_size[0] == spec.in_chans
    assert len(cfg.input_size) == spec.dims + 1
    assert cfg.num_classes == spec.num_classes
    assert len(cfg.mean) == len(cfg.std) == spec.in_chans
    assert cfg.labels is None or len(cfg.labels) == cfg.num_classes


def test_imagenet_models_carry_the_imagenet_labels_and_torchvision_transforms():
    cfg = model_default_cfg("resnet50")
    assert (cfg.labels[0], cfg.labels[999]) == ("tench", "toilet tissue")
    assert (cfg.input_size, cfg.crop_pct, cfg.interpolation) == ((3, 224, 224), 0.875, "bilinear")
    assert model_default_cfg("efficientnet_v2_s").input_size == (3, 384, 384)
    assert model_default_cfg("convnext_tiny").crop_pct == pytest.approx(224 / 236)


def test_digit_models_are_labelled_with_digits():
    assert model_default_cfg("resnet_digits").labels == [str(d) for d in range(10)]

"""torchvision fidelity: layout, conversion and outputs against the committed fixture.

The fixture (tests/fixtures/torchvision/<name>.json, made by
scripts/make_torchvision_fixture.py with torchvision 0.29.1) holds torchvision's ordered
state-dict layout and its logits for weights filled by fill_rule.py. Here the same rule
rebuilds the torchvision-keyed weights, `from_torchvision` converts them, and the blockserve
model must reproduce torchvision's logits.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models import create_model
from models.convert import TORCHVISION_MODELS, ConversionError, from_torchvision

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "torchvision"


@pytest.fixture(scope="module")
def fill_rule(load_module):
    return load_module(FIXTURE_DIR / "fill_rule.py")


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURE_DIR / f"{name}.json").read_text(encoding="utf-8"))


def torchvision_state_dict(fixture: dict, fill_rule) -> dict[str, torch.Tensor]:
    return {
        key: torch.from_numpy(fill_rule.fill_tensor(key, tuple(shape), dtype))
        for key, shape, dtype in fixture["state_dict"]
    }


def test_every_torchvision_model_has_a_fixture():
    assert sorted(path.stem for path in FIXTURE_DIR.glob("*.json")) == sorted(TORCHVISION_MODELS)


@pytest.mark.slow
@pytest.mark.parametrize("name", TORCHVISION_MODELS)
def test_torchvision_keys_shapes_and_logits_match(name, fill_rule):
    fixture = load_fixture(name)
    model = create_model(name).eval()
    ours = model.state_dict()
    assert [shape for _, shape, _ in fixture["state_dict"]] == [
        list(t.shape) for t in ours.values()
    ]
    assert sum(p.numel() for p in model.parameters()) == fixture["params"]

    model.load_state_dict(from_torchvision(name, torchvision_state_dict(fixture, fill_rule)))
    assert list(fixture["input"]["shape"]) == list(fill_rule.INPUT_SHAPE)
    with torch.no_grad():
        logits = model(torch.from_numpy(fill_rule.make_input())).double()

    expected = torch.tensor(fixture["logits"], dtype=torch.float64)
    assert logits.shape == expected.shape
    assert (logits - expected).abs().max() <= 1e-4 * expected.abs().max()


def test_conversion_refuses_entries_whose_kinds_do_not_line_up(fill_rule):
    entries = list(torchvision_state_dict(load_fixture("resnet18"), fill_rule).items())
    entries[1], entries[2] = entries[2], entries[1]  # bn1.weight <-> bn1.bias: same shape
    with pytest.raises(
        ConversionError, match=r"'bn1\.bias' \(bias\) lines up with 'stem\.norm\.weight'"
    ):
        from_torchvision("resnet18", dict(entries))


def test_conversion_refuses_a_wrong_shape(fill_rule):
    state_dict = torchvision_state_dict(load_fixture("resnet18"), fill_rule)
    state_dict["fc.weight"] = torch.zeros(10, 512)
    with pytest.raises(ConversionError, match=r"fc\.weight.*\[10, 512\].*\[1000, 512\]"):
        from_torchvision("resnet18", state_dict)


def test_conversion_refuses_missing_entries(fill_rule):
    state_dict = torchvision_state_dict(load_fixture("resnet18"), fill_rule)
    del state_dict["fc.bias"]
    with pytest.raises(ConversionError, match=r"121 entries.*122"):
        from_torchvision("resnet18", state_dict)


def test_conversion_accepts_a_fine_tuned_head(fill_rule):
    state_dict = torchvision_state_dict(load_fixture("resnet18"), fill_rule)
    head_bias = torch.arange(10, dtype=torch.float32)
    state_dict["fc.weight"], state_dict["fc.bias"] = torch.zeros(10, 512), head_bias
    converted = from_torchvision("resnet18", state_dict, num_classes=10)
    model = create_model("resnet18", num_classes=10).eval()
    model.load_state_dict(converted)

    # A zero weight leaves only the bias: the logits show the fine-tuned head was loaded.
    with torch.no_grad():
        logits = model(torch.from_numpy(fill_rule.make_input()))
    assert torch.equal(logits, head_bias.expand(len(logits), 10))


def test_conversion_rejects_models_without_torchvision_counterpart():
    with pytest.raises(KeyError, match=r"resnet_tiny.*no torchvision counterpart"):
        from_torchvision("resnet_tiny", {})

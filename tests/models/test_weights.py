"""Weights: safetensors and weights-only torch checkpoints, refusal of arbitrary pickles, and
mismatch errors listing missing keys, unexpected keys and shape mismatches."""

from __future__ import annotations

import hashlib

import pytest
import torch

from models import WeightsMismatchError, create_model, load_weights, save_weights
from models.files import file_sha256
from models.weights import WeightsLoadError


class NotATensor:
    """A custom class; unpickling it would run arbitrary code paths."""


@pytest.fixture
def trained():
    """A resnet_tiny whose weights and BN statistics differ from a fresh model's."""
    model = create_model("resnet_tiny")
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if key.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif tensor.is_floating_point():
                tensor.uniform_(-0.2, 0.2)
    return model.eval()


def fresh() -> torch.nn.Module:
    return create_model("resnet_tiny").eval()


def assert_same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> None:
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


def test_safetensors_round_trip_restores_every_tensor(trained, tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(trained, path)
    model = fresh()
    load_weights(model, path)
    assert_same_outputs(model, trained)


@pytest.mark.parametrize("wrapper", [None, "state_dict", "model"])
def test_torch_checkpoints_load_plain_or_wrapped(trained, tmp_path, wrapper):
    path = tmp_path / "w.pt"
    state_dict = trained.state_dict()
    torch.save(state_dict if wrapper is None else {wrapper: state_dict, "epoch": 3}, path)
    model = fresh()
    load_weights(model, path)
    assert_same_outputs(model, trained)


def test_a_pickle_with_a_custom_class_is_refused(trained, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": trained.state_dict(), "extra": NotATensor()}, path)
    with pytest.raises(WeightsLoadError, match=r"refusing to load .*weights_only=True"):
        load_weights(fresh(), path)


def test_a_whole_pickled_module_is_refused(trained, tmp_path):
    path = tmp_path / "module.pt"
    torch.save(trained, path)
    with pytest.raises(WeightsLoadError, match="refusing to load"):
        load_weights(fresh(), path)


def test_missing_keys_are_listed(trained, tmp_path):
    path = tmp_path / "w.pt"
    state_dict = trained.state_dict()
    del state_dict["head.fc.bias"]
    torch.save(state_dict, path)
    with pytest.raises(WeightsMismatchError, match=r"1 missing keys:\n    head\.fc\.bias") as info:
        load_weights(fresh(), path)
    assert info.value.missing == ["head.fc.bias"]
    assert info.value.unexpected == [] and info.value.shape_mismatches == []


def test_unexpected_keys_are_listed(trained, tmp_path):
    path = tmp_path / "w.pt"
    torch.save({**trained.state_dict(), "head.extra": torch.zeros(1)}, path)
    with pytest.raises(WeightsMismatchError, match=r"1 unexpected keys:\n    head\.extra") as info:
        load_weights(fresh(), path)
    assert info.value.unexpected == ["head.extra"]


def test_shape_mismatches_are_listed_with_both_shapes(trained, tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(create_model("resnet_tiny", num_classes=4), path)
    with pytest.raises(WeightsMismatchError) as info:
        load_weights(fresh(), path)
    assert "head.fc.weight: model [10, 64], file [4, 64]" in str(info.value)
    assert [m.key for m in info.value.shape_mismatches] == ["head.fc.weight", "head.fc.bias"]


def test_all_three_kinds_are_reported_together(trained, tmp_path):
    path = tmp_path / "w.pt"
    state_dict = trained.state_dict()
    del state_dict["stem.conv.weight"]
    state_dict["head.fc.bias"] = torch.zeros(3)
    state_dict["junk"] = torch.zeros(1)
    torch.save(state_dict, path)
    with pytest.raises(WeightsMismatchError) as info:
        load_weights(fresh(), path)
    message = str(info.value)
    assert "missing keys" in message and "unexpected keys" in message
    assert "shape mismatches" in message


def test_non_strict_loading_tolerates_missing_and_unexpected_keys_but_not_shapes(trained, tmp_path):
    path = tmp_path / "w.pt"
    state_dict = {k: v for k, v in trained.state_dict().items() if not k.startswith("head.")}
    torch.save({**state_dict, "junk": torch.zeros(1)}, path)
    model = fresh()
    load_weights(model, path, strict=False)
    torch.testing.assert_close(model.stem.conv.weight, trained.stem.conv.weight)

    torch.save({"head.fc.bias": torch.zeros(3)}, path)
    with pytest.raises(WeightsMismatchError, match=r"head\.fc\.bias: model"):
        load_weights(fresh(), path, strict=False)


def test_long_listings_are_truncated_in_the_message_but_complete_on_the_error(tmp_path):
    path = tmp_path / "empty.pt"
    torch.save({}, path)
    with pytest.raises(WeightsMismatchError, match=r"\.\.\. and \d+ more") as info:
        load_weights(fresh(), path)
    assert len(info.value.missing) == len(fresh().state_dict())


def test_unreadable_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_weights(fresh(), tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(WeightsLoadError, match="not a valid safetensors file"):
        load_weights(fresh(), bad)
    truncated = tmp_path / "bad.pt"
    truncated.write_bytes(b"\x80\x02garbage")
    with pytest.raises(WeightsLoadError, match=str(truncated)):
        load_weights(fresh(), truncated)


def test_a_checkpoint_that_is_not_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(WeightsLoadError, match="holds a list, expected a state dict"):
        load_weights(fresh(), path)
    torch.save({"a": torch.zeros(1), "b": 3}, path)
    with pytest.raises(WeightsLoadError, match=r"entries are not tensors: \['b'\]"):
        load_weights(fresh(), path)


def test_save_weights_requires_a_safetensors_path(tmp_path):
    with pytest.raises(ValueError, match=r"use a \.safetensors path"):
        save_weights(fresh(), tmp_path / "w.pt")


def test_file_sha256_is_the_hex_digest_of_the_bytes(tmp_path):
    path = tmp_path / "blob"
    data = bytes(range(256)) * 5000  # spans several read chunks
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()

"""Weights recipes: missing weights are made once, under a lock, and never left half-written."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from models import recipes
from models.files import atomic_path
from models.recipes import WeightsRecipe, ensure_weights, recipe_for


class FakeTrainer:
    """Writes a small file the way real training does; records every call."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[Path] = []
        self.fail = fail
        self.lock_was_held: bool | None = None

    def __call__(self, out: Path, progress) -> None:
        self.calls.append(out)
        self.lock_was_held = _locked_elsewhere(out.with_name(f"{out.name}.lock"))
        with atomic_path(out) as partial:
            partial.write_bytes(b"half")
            if self.fail:
                raise RuntimeError("training crashed")
            partial.write_bytes(b"weights")


def _locked_elsewhere(lock_path: Path) -> bool:
    with open(lock_path, "a") as other:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(other, fcntl.LOCK_UN)
        return False


@pytest.fixture
def trainer(monkeypatch) -> FakeTrainer:
    fake = FakeTrainer()
    monkeypatch.setitem(recipes.RECIPES, "digits", WeightsRecipe("resnet_digits", "fake", fake))
    return fake


def test_missing_weights_are_made_under_an_exclusive_lock_and_then_reused(tmp_path, trainer):
    path = tmp_path / "digits" / "digits.safetensors"
    messages: list[str] = []

    assert ensure_weights("digits", "resnet_digits", path, messages.append) == path
    assert ensure_weights("digits", "resnet_digits", path, messages.append) == path

    assert trainer.calls == [path]
    assert trainer.lock_was_held is True
    assert path.read_bytes() == b"weights"
    assert "making them with recipe 'digits'" in messages[0]


def test_a_recipe_that_crashes_leaves_no_weights_file(tmp_path, monkeypatch):
    crashing = FakeTrainer(fail=True)
    monkeypatch.setitem(recipes.RECIPES, "digits", WeightsRecipe("resnet_digits", "", crashing))
    path = tmp_path / "digits.safetensors"

    with pytest.raises(RuntimeError, match="training crashed"):
        ensure_weights("digits", "resnet_digits", path, lambda message: None)
    assert [p.name for p in tmp_path.iterdir()] == ["digits.safetensors.lock"]


@pytest.mark.parametrize(
    ("name", "arch", "message"),
    [
        ("mnist", "resnet_mnist", r"unknown weights recipe 'mnist'; known recipes: \['digits'\]"),
        ("digits", "resnet18", "weights recipe 'digits' makes resnet_digits weights, not resnet18"),
    ],
)
def test_unknown_recipes_and_recipes_for_another_model_are_refused(
    tmp_path, trainer, name, arch, message
):
    with pytest.raises(ValueError, match=message):
        ensure_weights(name, arch, tmp_path / "w.safetensors", lambda message: None)
    assert trainer.calls == []


def test_recipes_are_found_by_the_model_they_train():
    assert recipe_for("resnet_digits") == "digits"
    assert recipe_for("resnet18") is None

"""Weights recipes: named, seeded procedures that produce a model's weights file when it is missing.

A model config names one (`weights_recipe: digits`) so a fresh install serves a trained model
without a separate training step. The training code is imported only when a recipe runs. The
file appears atomically (the trainer writes a temporary file and renames it), and an exclusive
lock next to it makes a second process starting at the same time wait and reuse the result.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

Progress = Callable[[str], None]


@dataclass(frozen=True)
class WeightsRecipe:
    arch: str  # the registry model whose weights it produces
    about: str  # what it does, for progress messages
    train: Callable[[Path, Progress], None]  # writes the weights file (atomically)


def _train_digits(out: Path, progress: Progress) -> None:
    from models.digits import train_digits

    train_digits(out, progress=progress)


RECIPES: dict[str, WeightsRecipe] = {
    "digits": WeightsRecipe(
        "resnet_digits", "training on scikit-learn's digits, seed 0, about 20 s", _train_digits
    ),
}


def weights_recipe(name: str, arch: str) -> WeightsRecipe:
    """The recipe `name`, checked to produce weights for `arch`; ValueError naming the problem."""
    recipe = RECIPES.get(name)
    if recipe is None:
        raise ValueError(f"unknown weights recipe {name!r}; known recipes: {sorted(RECIPES)}")
    if recipe.arch != arch:
        raise ValueError(f"weights recipe {name!r} makes {recipe.arch} weights, not {arch}")
    return recipe


def recipe_for(arch: str) -> str | None:
    """The name of a recipe that makes weights for `arch`, if any (for error hints)."""
    return next((name for name, recipe in RECIPES.items() if recipe.arch == arch), None)


def ensure_weights(name: str, arch: str, path: Path, progress: Progress) -> Path:
    """`path` as it is when it exists, else made by recipe `name` (one process at a time)."""
    recipe = weights_recipe(name, arch)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(path.with_name(f"{path.name}.lock")):
        if path.is_file():
            progress(f"weights {path} were made by another process meanwhile")
            return path
        progress(f"weights {path} not found: making them with recipe {name!r} ({recipe.about})")
        recipe.train(path, progress)
    if not path.is_file():
        raise RuntimeError(f"weights recipe {name!r} finished without writing {path}")
    return path


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) on `lock_path`, released when the block exits or the
    process dies."""
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)

"""Shared test fixtures."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _own_home(tmp_path_factory) -> None:
    """Servers started by the tests keep what they write under `$BLOCKSERVE_HOME` (a generated
    API token, state) out of the user's own home; their subprocesses inherit it."""
    os.environ["BLOCKSERVE_HOME"] = str(tmp_path_factory.mktemp("blockserve-home"))


@pytest.fixture(scope="session")
def load_module():
    """Import a standalone .py file (e.g. a fixture helper outside any package) by path."""

    def load(path: Path) -> ModuleType:
        name = f"_test_helper_{path.stem}"
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # before running it: dataclasses look their module up
            spec.loader.exec_module(module)
        return sys.modules[name]

    return load


DIGITS_SEED = 0


@pytest.fixture(scope="session")
def digits_weights(request, tmp_path_factory) -> Path:
    """`resnet_digits` trained once (seed 0), cached across sessions by the pytest cache,
    keyed by the seed, the trainer's source and the torch version."""
    from models import digits

    source = Path(digits.__file__).read_bytes() + torch.__version__.encode()
    key = hashlib.sha256(source).hexdigest()[:12]
    name = f"blockserve-digits-seed{DIGITS_SEED}-{key}"
    cache = getattr(request.config, "cache", None)
    directory = cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp(name)
    weights = Path(directory) / "digits.safetensors"
    if not weights.exists():
        digits.train_digits(weights, digits.TrainConfig(seed=DIGITS_SEED))
    return weights

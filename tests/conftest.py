"""Shared test fixtures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


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

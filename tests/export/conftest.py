"""Bundles of the tiny zoo model shared by the export tests (exported once per module)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from tiny_model import TINY, TINY_MAX_BATCH

from models.export import export_bundle
from models.registry import create_model
from models.weights import save_weights


@pytest.fixture(scope="module")
def bundle_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture(scope="module")
def onnx_bundle(bundle_cache) -> Path:
    return export_bundle(TINY, fmt="onnx", cache_dir=bundle_cache, max_batch=TINY_MAX_BATCH)


@pytest.fixture(scope="module")
def torchscript_bundle(bundle_cache) -> Path:
    return export_bundle(TINY, fmt="torchscript", cache_dir=bundle_cache, max_batch=TINY_MAX_BATCH)


@pytest.fixture
def onnx_bundle_copy(onnx_bundle, tmp_path) -> Path:
    """A private copy to corrupt."""
    return Path(shutil.copytree(onnx_bundle, tmp_path / onnx_bundle.name))


@pytest.fixture(scope="module")
def trained_tiny(tmp_path_factory) -> Path:
    """Weights for the tiny model that count as trained (a file, not random init)."""
    torch.manual_seed(123)
    weights = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(create_model(TINY).eval(), weights)
    return weights

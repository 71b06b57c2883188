"""Bundles of the tiny zoo model shared by the export tests (exported once per module)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tiny_model import TINY, TINY_MAX_BATCH

from models.export import export_bundle


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

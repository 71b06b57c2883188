"""Fixtures shared by the serving tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_fakes import FakeRuntime, repository_config

from service.metrics import Metrics


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def runtime() -> FakeRuntime:
    """A fake runtime with the digits model's ten classes."""
    return FakeRuntime(num_classes=10)


@pytest.fixture
def config(tmp_path):
    """A repository serving one digits-shaped model (gRPC off)."""
    return repository_config(tmp_path, {})


@pytest.fixture(scope="session")
def bundle_cache(tmp_path_factory) -> Path:
    """One export cache per session: each real model is exported once."""
    return tmp_path_factory.mktemp("bundles")

"""Fixtures shared by the serving tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
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


@pytest.fixture(scope="session")
def bundle_cache(tmp_path_factory) -> Path:
    """One export cache per session: each real model is exported once."""
    return tmp_path_factory.mktemp("bundles")

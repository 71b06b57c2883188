"""Every zoo model exports to every format at a small input size with verified parity at batch
1 and 7 (new registry entries are covered automatically)."""

from __future__ import annotations

import pytest

from models.export import FORMATS, export_bundle, load_bundle
from models.registry import list_models, model_default_cfg, model_spec

SMALL_SPATIAL = {1: 256, 2: 32, 3: 16}
HEAVY = {"resnet152", "efficientnet_v2_s", "wide_resnet50_2", "resnet101", "convnext_tiny"}
MAX_BATCH = 7  # parity batches [1, 7]; test_bundle covers a distinct maximum


def small_input_size(name: str) -> tuple[int, ...]:
    spec = model_spec(name)
    default_spatial = model_default_cfg(name).input_size[1:]
    return (spec.in_chans, *(min(size, SMALL_SPATIAL[spec.dims]) for size in default_spatial))


ZOO_CASES = [
    pytest.param(name, fmt, id=f"{name}-{fmt}", marks=[pytest.mark.slow] if name in HEAVY else [])
    for name in list_models()
    for fmt in sorted(FORMATS)
]


@pytest.mark.parametrize(("name", "fmt"), ZOO_CASES)
def test_zoo_model_exports_with_parity_at_small_input(name, fmt, tmp_path):
    input_size = small_input_size(name)
    path = export_bundle(
        name, fmt=fmt, cache_dir=tmp_path, input_size=input_size, max_batch=MAX_BATCH
    )

    bundle = load_bundle(path)
    parity = bundle.manifest["parity"]
    assert parity["passed"] and parity["max_rel_err"] <= 1e-4
    assert sorted(check["batch"] for check in parity["checks"]) == [1, MAX_BATCH]
    assert bundle.manifest["input"]["shape"] == [-1, *input_size]
    assert bundle.manifest["outputs"][0]["shape"] == [-1, model_default_cfg(name).num_classes]

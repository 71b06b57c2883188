"""The zoo model the export tests use, the maximum batch its bundles are verified at, and its
export with those settings."""

from pathlib import Path

from models.export import export_bundle

TINY = "resnet_tiny"
TINY_MAX_BATCH = 8


def export_tiny(cache_dir: Path, **kwargs) -> Path:
    return export_bundle(TINY, cache_dir=cache_dir, max_batch=TINY_MAX_BATCH, **kwargs)

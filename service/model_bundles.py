"""Which bundle serves a model config. Where torch is installed, `export_bundle` finds or makes
it, and the bundle is recorded under the export request it answered; where torch is not (the
slim image), the recorded bundle of the same request serves, and a request nobody exported is
refused with `ExportUnavailable`.

A request holds everything of the config the artifact depends on (network, format, precision,
calibration settings, weights by sha256, batch limit, input size), so a changed config never
finds the bundle of the old one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.export import Bundle, load_bundle
from models.files import atomic_path, file_sha256
from service.config import ModelConfig
from service.errors import ExportUnavailable
from service.network import ModelNetwork

RECORDS_DIR = "served"  # under the bundle cache: <request sha256>.json -> the bundle's name


def export_request(
    config: ModelConfig, network: ModelNetwork, weights_sha256: str | None
) -> dict[str, Any]:
    """What `config`'s bundle is exported from, as JSON data."""
    return {
        "name": config.arch or config.name,
        "spec": network.spec.to_dict(),
        "format": config.format,
        "precision": config.precision,
        "calibration": config.calibration.model_dump(mode="json"),
        "weights_sha256": weights_sha256,
        "max_batch": config.batching.max_batch_size,
        "input_size": list(network.input_size),
    }


def served_bundle(
    config: ModelConfig,
    network: ModelNetwork,
    weights: Path | None,
    cache_dir: Path,
    export: Callable[[Callable[..., Path]], Path],
) -> Bundle:
    """The bundle that serves `config`: `export(export_bundle)` where torch is installed (then
    recorded), else the one recorded for the same request."""
    try:
        from models.export import export_bundle  # torch and onnx: the full image only
    except ImportError as error:
        weights_sha256 = None if weights is None else file_sha256(weights)
        request = export_request(config, network, weights_sha256)
        bundle_dir = _recorded_bundle(_record_path(cache_dir, request), cache_dir)
        if bundle_dir is None:
            raise ExportUnavailable(config.name, "an export") from error
        return load_bundle(bundle_dir)
    bundle = load_bundle(export(export_bundle))
    # The export hashed the weights into the manifest: no second pass over the file.
    request = export_request(config, network, bundle.manifest["weights"]["sha256"])
    _record(_record_path(cache_dir, request), request, bundle.path)
    return bundle


def _record_path(cache_dir: Path, request: dict[str, Any]) -> Path:
    return cache_dir / RECORDS_DIR / f"{_request_key(request)}.json"


def _request_key(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def _recorded_bundle(record: Path, cache_dir: Path) -> Path | None:
    if not record.is_file():
        return None
    bundle_dir = cache_dir / json.loads(record.read_text())["bundle"]
    return bundle_dir if bundle_dir.is_dir() else None


def _record(record: Path, request: dict[str, Any], bundle_dir: Path) -> None:
    content = json.dumps({"request": request, "bundle": bundle_dir.name}, indent=2) + "\n"
    if record.is_file() and record.read_text() == content:
        return
    record.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(record) as partial:
        partial.write_text(content)

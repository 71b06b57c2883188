"""`export_bundle`: registry model → verified, cached artifact bundle."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import shutil
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from models.builder import build_network
from models.default_cfgs import DefaultCfg, spec_default_cfg
from models.export.bundle import (
    MANIFEST_SCHEMA,
    BundleError,
    discard_bundle,
    load_bundle,
    new_staging_dir,
    publish_bundle,
)
from models.export.float16 import FP16_SETTINGS, convert_onnx_fp16
from models.export.formats import ArtifactFormat, get_format
from models.export.parity import ParityInput, check_parity, random_inputs
from models.export.precision import ReducedPrecision, precision_format_problem, verify_precision
from models.export.quantize import INT8_SETTINGS, quantize_int8
from models.files import file_sha256
from models.preprocessing import default_labels, default_preprocess
from models.registry import model_default_cfg, model_spec
from models.spec import NetworkSpec
from models.summary import summarize
from models.weights import load_weights

EXAMPLE_BATCH = 2  # torch.export and tracing specialise size-1 dims
ODD_BATCH = 7
DTYPE = "float32"
OUTPUT_NAME = "logits"
_EXPORT_LOCK = threading.Lock()  # exporters keep global state; one export per process at a time


def export_bundle(
    name: str,
    *,
    spec: NetworkSpec | None = None,
    fmt: Literal["onnx", "torchscript"] = "onnx",
    weights: Path | None = None,
    overrides: dict | None = None,
    cache_dir: Path,
    max_batch: int = 32,
    progress: Callable[[str], None] | None = None,
    input_size: Sequence[int] | None = None,
    sample_input: np.ndarray | None = None,
    seed: int = 0,
    reduced: ReducedPrecision | None = None,
) -> Path:
    """Export registry model `name` to a bundle under `cache_dir` and return its directory.
    With `spec`, the network is that spec instead (`name` then only names the bundle; no
    `overrides`) and its defaults are `spec_default_cfg`'s.

    A bundle with the same artifact inputs (see `cache_key`) is reused without exporting.
    `input_size` (C, *spatial) defaults to the model's default cfg; `sample_input`
    (N, *input_size) is a real preprocessed batch added to the parity check. The manifest also
    records the preprocessing and labels the default cfg gives at that input size: the
    defaults a server resolves its configured values against.

    With `reduced`, the verified fp32 model is brought to that precision (int8: quantized on its
    calibration inputs; fp16 ONNX: the graph converted; fp16/bf16 TorchScript: cast where it is
    loaded) and checked against fp32 on the held-out inputs, on `reduced.device`
    (`models.export.precision`); a reduced ONNX graph replaces the fp32 one in the bundle.
    """
    report = progress or (lambda message: None)
    artifact_format = get_format(fmt)
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    problem = None if reduced is None else precision_format_problem(reduced.precision, fmt)
    if problem is not None:
        raise ValueError(problem)
    overrides = _plain_data(overrides or {})
    if spec is None:
        arch: str | None = name
        spec, cfg = model_spec(name, **overrides), model_default_cfg(name)
    elif overrides:
        raise ValueError("overrides apply to registry models; apply them to the spec instead")
    else:
        arch, cfg = None, spec_default_cfg(spec.in_chans, spec.dims, spec.num_classes)
    input_shape = _input_shape(spec, cfg, input_size)
    if sample_input is not None:
        sample_input = _checked_sample(sample_input, input_shape, "sample input")
    if reduced is not None:
        if reduced.calibration is not None:
            _checked_sample(reduced.calibration, input_shape, "int8 calibration inputs")
        _checked_sample(reduced.held_out, input_shape, f"{reduced.precision} held-out inputs")
    weights_record = _weights_record(weights, seed)
    artifact = {
        "schema": MANIFEST_SCHEMA,
        "name": name,
        "arch": arch,
        "overrides": overrides,
        "spec": spec.to_dict(),
        "weights": weights_record,
        "input": {"name": "input", "shape": [-1, *input_shape], "dtype": DTYPE},
        "format": fmt,
        "max_batch": max_batch,
        "precision": "fp32" if reduced is None else reduced.precision,
        "precision_settings": None if reduced is None else _precision_settings(reduced, fmt),
    }
    key = cache_key(artifact, artifact_format, sample_input)
    manifest_head = {
        **artifact,
        "preprocess": default_preprocess(cfg, input_shape),
        "labels": default_labels(cfg, spec.head.num_classes),
    }
    cache_dir = Path(cache_dir)
    destination = cache_dir / f"{name}-{fmt}-{key[:16]}"
    if _reusable(destination, report):
        return destination
    with _EXPORT_LOCK:
        if _reusable(destination, report):
            return destination
        cache_dir.mkdir(parents=True, exist_ok=True)
        staging = new_staging_dir(cache_dir)
        try:
            manifest = _export(
                manifest_head,
                spec,
                artifact_format,
                weights,
                seed,
                sample_input,
                reduced,
                staging,
                report,
            )
            manifest["cache_key"] = key
            publish_bundle(staging, manifest, destination)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    report(f"wrote {destination}")
    return destination


def cache_key(
    artifact: dict[str, Any], artifact_format: ArtifactFormat, sample: np.ndarray | None
) -> str:
    """sha256 over what determines the artifact and its verification: model, spec, weights,
    input shape, format and toolchain, and the batches parity ran on. Preprocess and labels are
    not part of it: they follow from these (the defaults) or belong to the server's config."""
    payload = {
        **artifact,
        "toolchain": artifact_format.toolchain(),
        "sample_sha256": None if sample is None else hashlib.sha256(sample.tobytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _export(
    manifest_head: dict[str, Any],
    spec: NetworkSpec,
    artifact_format: ArtifactFormat,
    weights: Path | None,
    seed: int,
    sample: np.ndarray | None,
    reduced: ReducedPrecision | None,
    staging: Path,
    report: Callable[[str], None],
) -> dict[str, Any]:
    name, input_shape = manifest_head["name"], tuple(manifest_head["input"]["shape"][1:])
    report(f"building {name} ({manifest_head['weights']['source']})")
    model = _build(spec, weights, seed)
    summary = summarize(model, input_shape)
    example = torch.from_numpy(random_inputs(input_shape, [EXAMPLE_BATCH], seed=seed)[0].batch)
    report(f"exporting {name} to {artifact_format.name}")
    exported = artifact_format.export(model, example, staging)
    max_batch = manifest_head["max_batch"]
    batch_sizes = sorted({1, min(ODD_BATCH, max_batch), max_batch})
    report(f"checking parity with eager PyTorch at batch sizes {batch_sizes}")
    inputs = random_inputs(input_shape, batch_sizes, seed=seed + 1)
    if sample is not None:
        inputs.append(ParityInput("sample", sample))
    parity = check_parity(model, artifact_format.load_runner(exported.model_file), inputs)
    with torch.inference_mode():
        num_outputs = model(example).shape[1]
    model_file, precision_check = exported.model_file, None
    if reduced is not None:
        trained = manifest_head["weights"]["trained"]
        report(f"making the {reduced.precision} model and verifying it against fp32")
        model_file, precision_check = _reduce(
            exported.model_file, artifact_format, reduced, trained
        )
        report(
            f"{reduced.precision} verified on {len(reduced.held_out)} held-out inputs on "
            f"{reduced.device}: top-1 agreement {precision_check['top1_agreement']:.2%}, "
            f"cosine {precision_check['cosine_similarity']:.4f}"
        )
    return {
        **manifest_head,
        "model_file": model_file.name,
        "outputs": [{"name": OUTPUT_NAME, "shape": [-1, num_outputs], "dtype": DTYPE}],
        "params": summary.total_params,
        "mult_adds": summary.total_mult_adds,
        "summary": summary.to_json(),
        "opset": exported.opset,
        "exporter": exported.exporter,
        "versions": _versions(),
        "parity": parity,
        "precision_check": precision_check,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _precision_settings(reduced: ReducedPrecision, fmt: str) -> dict[str, Any]:
    """What makes the reduced artifact and its verdict, for the cache key and the manifest."""
    return {**reduced.settings(), **_made_by(reduced.precision, fmt)}


def _made_by(precision: str, fmt: str) -> dict[str, Any]:
    """How a reduced artifact is made: int8 quantization's or the fp16 ONNX conversion's
    settings; nothing for a TorchScript module, which is cast where it is loaded."""
    if precision == "int8":
        return INT8_SETTINGS
    return FP16_SETTINGS if fmt == "onnx" else {}


def _reduce(
    fp32_file: Path, artifact_format: ArtifactFormat, reduced: ReducedPrecision, trained: bool
) -> tuple[Path, dict[str, Any]]:
    """The served model file at `reduced.precision`, verified against `fp32_file`, and the
    manifest's `precision_check` record. The bundle keeps one model: a reduced ONNX graph
    replaces the fp32 one; TorchScript keeps its module and is cast where it is loaded."""
    if reduced.precision == "int8":
        model_file, record = quantize_int8(
            fp32_file, reduced, artifact_format.load_runner, trained=trained
        )
    else:
        onnx = artifact_format.name == "onnx"
        model_file = convert_onnx_fp16(fp32_file) if onnx else fp32_file
        record = verify_precision(
            artifact_format.load_runner(fp32_file),
            artifact_format.load_runner(model_file, reduced.device, reduced.precision),
            reduced,
            trained=trained,
        )
    if model_file != fp32_file:
        fp32_file.unlink()
    return model_file, {**record, **_made_by(reduced.precision, artifact_format.name)}


def _build(spec: NetworkSpec, weights: Path | None, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_network(spec)
    if weights is not None:
        load_weights(model, weights)
    return model.eval()


def _reusable(destination: Path, report: Callable[[str], None]) -> bool:
    if not destination.exists():
        return False
    try:
        load_bundle(destination)
    except BundleError as error:
        report(f"discarding invalid cached bundle: {error}")
        discard_bundle(destination)
        return False
    report(f"using cached bundle {destination}")
    return True


def _input_shape(
    spec: NetworkSpec, cfg: DefaultCfg, input_size: Sequence[int] | None
) -> tuple[int, ...]:
    shape = tuple(input_size) if input_size is not None else (spec.in_chans, *cfg.input_size[1:])
    if len(shape) != spec.dims + 1 or shape[0] != spec.in_chans or min(shape) < 1:
        raise ValueError(
            f"input size {shape} does not fit a {spec.dims}d model with {spec.in_chans} input "
            f"channels; expected (C={spec.in_chans}, {spec.dims} spatial sizes)"
        )
    return shape


def _checked_sample(sample: np.ndarray, input_shape: tuple[int, ...], what: str) -> np.ndarray:
    if sample.dtype != np.float32 or sample.shape[1:] != input_shape:
        raise ValueError(
            f"{what} must be float32 (N, {', '.join(map(str, input_shape))}), "
            f"got {sample.dtype} {sample.shape}"
        )
    return np.ascontiguousarray(sample)


def _weights_record(weights: Path | None, seed: int) -> dict[str, Any]:
    if weights is None:
        return {"source": f"random-init, seed {seed}", "sha256": None, "trained": False}
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"weights file not found: {weights}")
    return {"source": weights.name, "sha256": file_sha256(weights), "trained": True}


def _plain_data(overrides: dict) -> dict[str, Any]:
    """Overrides as JSON data (dataclass values such as StageSpec become dicts) for the manifest
    and the cache key."""

    def encode(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        raise TypeError(f"override value {value!r} is not JSON-serialisable")

    return json.loads(json.dumps(overrides, default=encode))


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for package in ("numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxscript", "blockserve"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions

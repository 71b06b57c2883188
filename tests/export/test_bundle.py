"""Bundle contents, the cache, atomic writes and refusal of damaged bundles."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings

import numpy as np
import onnx
import pytest
import torch
from tiny_model import TINY, TINY_MAX_BATCH

from models.default_cfgs import CIFAR10_LABELS
from models.export import FORMATS, BundleError, export_bundle, load_bundle
from models.export.bundle import MANIFEST_NAME
from models.files import file_sha256
from models.registry import create_model, model_default_cfg, model_spec
from models.summary import Summary, summarize
from models.weights import save_weights
from service.runtimes import load_runtime


def test_manifest_records_identity_weights_io_costs_toolchain_parity_and_files(onnx_bundle):
    manifest = load_bundle(onnx_bundle).manifest
    summary = summarize(create_model(TINY), (3, 32, 32))

    assert (manifest["name"], manifest["arch"]) == (TINY, TINY)
    assert manifest["spec"] == model_spec(TINY).to_dict()
    assert manifest["weights"] == {
        "source": "random-init, seed 0",
        "sha256": None,
        "trained": False,
    }
    assert manifest["input"] == {"name": "input", "shape": [-1, 3, 32, 32], "dtype": "float32"}
    assert manifest["outputs"] == [{"name": "logits", "shape": [-1, 10], "dtype": "float32"}]
    assert manifest["preprocess"]["crop"] == [32, 32]
    assert manifest["preprocess"]["channels"] == "rgb"
    assert manifest["preprocess"]["mean"] == pytest.approx([0.4914, 0.4822, 0.4465])
    assert manifest["labels"] == CIFAR10_LABELS
    assert manifest["params"] == summary.total_params
    assert manifest["mult_adds"] == summary.total_mult_adds > 0
    assert manifest["summary"]["totals"]["total_params"] == summary.total_params
    assert (manifest["format"], manifest["opset"]) == ("onnx", 17)
    assert manifest["exporter"]["dynamo"] is False and manifest["exporter"]["why"]
    assert {"torch", "onnx", "onnxruntime", "python"} <= manifest["versions"].keys()
    assert manifest["parity"]["passed"] and manifest["parity"]["max_rel_err"] <= 1e-4
    assert [check["batch"] for check in manifest["parity"]["checks"]] == [1, 7, TINY_MAX_BATCH]
    model_file = onnx_bundle / "model.onnx"
    assert manifest["files"] == {
        "model.onnx": {"sha256": file_sha256(model_file), "bytes": model_file.stat().st_size}
    }


def test_onnx_graph_passes_checker_at_opset_17_with_a_dynamic_batch(onnx_bundle):
    model = onnx.load(str(onnx_bundle / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    for value in (*model.graph.input, *model.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"


def test_torchscript_bundle_holds_a_traced_module_without_opset(torchscript_bundle):
    bundle = load_bundle(torchscript_bundle)
    assert bundle.model_file.name == "model.pt"
    assert bundle.manifest["opset"] is None
    assert bundle.manifest["parity"]["max_rel_err"] <= 1e-4


def test_manifest_preprocess_is_the_default_cfg_at_the_exported_input_size(tmp_path):
    manifest = load_bundle(
        export_bundle(TINY, input_size=(3, 24, 32), cache_dir=tmp_path, max_batch=2)
    ).manifest
    crop_pct = model_default_cfg(TINY).crop_pct
    assert manifest["preprocess"]["crop"] == [24, 32]
    # the longer crop side sets the resize, so a square image still covers the whole crop
    assert manifest["preprocess"]["resize"] == math.floor(32 / crop_pct)


def test_the_summary_read_back_from_the_manifest_renders_like_the_model(onnx_bundle):
    manifest = load_bundle(onnx_bundle).manifest
    fresh = summarize(create_model(TINY).eval(), (3, 32, 32))
    stored = Summary.from_json(manifest["summary"])
    assert stored.to_text() == fresh.to_text()
    assert stored.to_mermaid() == fresh.to_mermaid()
    assert stored.to_json() == fresh.to_json()


def test_default_labels_are_dropped_when_overrides_change_the_class_count(tmp_path):
    manifest = load_bundle(
        export_bundle(TINY, overrides={"num_classes": 4}, cache_dir=tmp_path, max_batch=2)
    ).manifest
    assert manifest["labels"] is None
    assert manifest["outputs"][0]["shape"] == [-1, 4]


def test_dataclass_overrides_are_recorded_as_plain_data(tmp_path):
    stages = model_spec(TINY).stages[:2]
    manifest = load_bundle(
        export_bundle(TINY, overrides={"stages": stages}, cache_dir=tmp_path, max_batch=2)
    ).manifest
    assert manifest["overrides"]["stages"] == [dataclasses.asdict(stage) for stage in stages]
    assert manifest["spec"]["stages"] == manifest["overrides"]["stages"]


def test_second_export_returns_the_cached_bundle_without_exporting(
    onnx_bundle, bundle_cache, monkeypatch
):
    mtime = (onnx_bundle / "model.onnx").stat().st_mtime_ns

    def exporter_must_not_run(*args, **kwargs):
        raise AssertionError("exporter called for a cached bundle")

    monkeypatch.setattr(FORMATS["onnx"], "export", exporter_must_not_run)
    messages = []
    again = export_bundle(
        TINY, cache_dir=bundle_cache, max_batch=TINY_MAX_BATCH, progress=messages.append
    )
    assert again == onnx_bundle
    assert (onnx_bundle / "model.onnx").stat().st_mtime_ns == mtime
    assert messages == [f"using cached bundle {onnx_bundle}"]


@pytest.mark.parametrize(
    ("change", "same_key"),
    [
        ({}, True),
        ({"fmt": "torchscript"}, False),
        ({"overrides": {"num_classes": 5}}, False),
        ({"input_size": (3, 16, 16)}, False),
        ({"max_batch": 4}, False),
        ({"seed": 1}, False),
    ],
    ids=["nothing", "format", "spec", "input", "max-batch", "seed"],
)
def test_cache_key_covers_format_spec_input_batch_and_seed(
    onnx_bundle, bundle_cache, change, same_key
):
    # The shared cache: an unchanged key finds the module's bundle instead of exporting again.
    kwargs = {"cache_dir": bundle_cache, "max_batch": TINY_MAX_BATCH, **change}
    other = export_bundle(TINY, **kwargs)
    assert (other.name == onnx_bundle.name) is same_key


def test_exported_weights_are_hashed_marked_trained_and_served(tmp_path):
    torch.manual_seed(123)
    trained = create_model(TINY).eval()
    weights = tmp_path / "tiny.safetensors"
    save_weights(trained, weights)

    bundle = load_bundle(export_bundle(TINY, weights=weights, cache_dir=tmp_path, max_batch=2))

    assert bundle.manifest["weights"] == {
        "source": "tiny.safetensors",
        "sha256": file_sha256(weights),
        "trained": True,
    }
    batch = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    with torch.inference_mode():
        expected = trained(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(load_runtime(bundle).run(batch), expected, atol=1e-4)


def test_a_real_sample_input_joins_the_parity_check(tmp_path):
    sample = np.random.default_rng(5).uniform(-2, 2, (3, 3, 32, 32)).astype(np.float32)
    manifest = load_bundle(
        export_bundle(TINY, cache_dir=tmp_path, max_batch=2, sample_input=sample)
    ).manifest
    assert manifest["parity"]["checks"][-1]["input"] == "sample"
    assert manifest["parity"]["checks"][-1]["batch"] == 3


def test_export_shows_users_no_exporter_warnings_and_restores_filters(tmp_path):
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for fmt in FORMATS:
            bundle = load_bundle(export_bundle(TINY, fmt=fmt, cache_dir=tmp_path, max_batch=2))
            load_runtime(bundle).warmup()
    assert [str(warning.message) for warning in caught] == []
    assert warnings.filters == filters_before


def test_a_crashing_export_leaves_neither_a_bundle_nor_a_partial_directory(tmp_path, monkeypatch):
    def crash(model, example, out_dir):
        (out_dir / "model.onnx").write_bytes(b"half a model")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(FORMATS["onnx"], "export", crash)
    with pytest.raises(RuntimeError, match="exporter crashed"):
        export_bundle(TINY, cache_dir=tmp_path, max_batch=2)
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_cached_bundle_is_discarded_and_exported_again(onnx_bundle_copy):
    (onnx_bundle_copy / "model.onnx").write_bytes(b"garbage")
    messages = []
    path = export_bundle(
        TINY, cache_dir=onnx_bundle_copy.parent, max_batch=TINY_MAX_BATCH, progress=messages.append
    )
    assert path == onnx_bundle_copy
    assert any("discarding invalid cached bundle" in message for message in messages)
    load_bundle(path)


def _remove_manifest(bundle):
    (bundle / MANIFEST_NAME).unlink()


def _remove_model(bundle):
    (bundle / "model.onnx").unlink()


def _truncate_model(bundle):
    path = bundle / "model.onnx"
    path.write_bytes(path.read_bytes()[:-100])


def _flip_a_byte(bundle):
    path = bundle / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_manifest(**changes):
    def edit(bundle):
        path = bundle / MANIFEST_NAME
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    return edit


def _garble_manifest(bundle):
    (bundle / MANIFEST_NAME).write_text("{not json")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_remove_manifest, "has no manifest.json"),
        (_remove_model, "'model.onnx' listed in the manifest is missing"),
        (_truncate_model, "'model.onnx' is truncated"),
        (_flip_a_byte, "sha256 mismatch for 'model.onnx'"),
        (_edit_manifest(format="tensorrt"), "unknown format 'tensorrt'"),
        (_edit_manifest(model_file="other.onnx"), "'other.onnx' is not listed"),
        (_garble_manifest, "not valid JSON"),
        (_edit_manifest(files={"../x": {"sha256": "0", "bytes": 0}}), "points outside the bundle"),
        (_edit_manifest(files=["model.onnx"]), "'files' must map file names to sha256/bytes"),
    ],
    ids=["missing-manifest", "missing-file", "truncated", "sha-mismatch", "unknown-format",
         "unlisted-model-file", "bad-json", "outside", "files-shape"],
)  # fmt: skip
def test_load_bundle_refuses_damaged_bundles_naming_the_problem(onnx_bundle_copy, damage, message):
    damage(onnx_bundle_copy)
    with pytest.raises(BundleError, match=message):
        load_bundle(onnx_bundle_copy)


def test_load_bundle_refuses_a_missing_directory(tmp_path):
    with pytest.raises(BundleError, match="bundle directory not found"):
        load_bundle(tmp_path / "nothing-here")


def test_external_data_files_are_kept_hashed_verified_and_served(tmp_path, monkeypatch):
    onnx_format = FORMATS["onnx"]
    export_single_file = onnx_format.export

    def export_with_external_data(model, example, out_dir):
        exported = export_single_file(model, example, out_dir)
        proto = onnx.load(str(exported.model_file))
        onnx.save_model(
            proto,
            str(exported.model_file),
            save_as_external_data=True,
            location="model.onnx.data",
            size_threshold=0,
        )
        return exported

    monkeypatch.setattr(onnx_format, "export", export_with_external_data)
    path = export_bundle(TINY, cache_dir=tmp_path, max_batch=2)
    bundle = load_bundle(path)
    assert set(bundle.manifest["files"]) == {"model.onnx", "model.onnx.data"}
    assert load_runtime(bundle).run(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 10)

    data = path / "model.onnx.data"
    os.truncate(data, data.stat().st_size - 4)
    with pytest.raises(BundleError, match=r"'model\.onnx\.data' is truncated"):
        load_bundle(path)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"fmt": "tflite"}, ValueError, "unknown export format 'tflite'"),
        ({"input_size": (1, 32, 32)}, ValueError, "does not fit a 2d model with 3 input"),
        ({"input_size": (3, 32)}, ValueError, "does not fit a 2d model"),
        ({"max_batch": 0}, ValueError, "max_batch must be >= 1"),
        ({"sample_input": np.zeros((2, 3, 8, 8), np.float32)}, ValueError, "sample input must"),
        ({"weights": "missing.safetensors"}, FileNotFoundError, "weights file not found"),
    ],
    ids=["format", "channels", "dims", "max-batch", "sample", "weights"],
)
def test_bad_export_arguments_are_rejected_before_exporting(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        export_bundle(TINY, cache_dir=tmp_path, **kwargs)
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_unknown_model_names_suggest_close_matches(tmp_path):
    with pytest.raises(KeyError, match="did you mean 'resnet_tiny'"):
        export_bundle("resnet_tiyn", cache_dir=tmp_path)

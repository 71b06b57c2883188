"""`blockserve models`, `summary` and `export`: output, exit codes and error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_run import run

from models.export import load_bundle
from models.registry import create_model, list_models
from models.weights import save_weights


def test_models_lists_the_whole_registry_with_input_sizes(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == list_models()
    assert "resnet_tiny          input 3x32x32      classes 10" in out


def test_models_filters_by_pattern_and_fails_when_nothing_matches(capsys):
    code, out, _ = run(capsys, "models", "mdnc*")
    assert (code, [line.split()[0] for line in out.splitlines()]) == (0, list_models("mdnc*"))
    code, out, err = run(capsys, "models", "nothing*")
    assert (code, out) == (1, "")
    assert "no model matches 'nothing*'" in err


def test_summary_prints_the_table_json_and_mermaid(capsys):
    code, text, _ = run(capsys, "summary", "resnet_tiny", "--input", "3,32,32")
    assert code == 0 and "Total params" in text and "Conv2d-1" in text

    code, out, _ = run(capsys, "summary", "resnet_tiny", "--format", "json")
    assert code == 0 and json.loads(out)["input_size"] == [[3, 32, 32]]

    code, out, _ = run(capsys, "summary", "mdnc_encoder1d", "--format", "mermaid")
    assert code == 0 and out.startswith("flowchart TB")


def test_summary_applies_overrides(capsys):
    code, out, _ = run(capsys, "summary", "resnet_tiny", "--set", "in_chans=1", "--format", "json")
    assert code == 0 and json.loads(out)["input_size"] == [[1, 32, 32]]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["summary", "resnet_tiyn"], "unknown model 'resnet_tiyn'; did you mean 'resnet_tiny'"),
        (["summary", "resnet_tiny", "--input", "3,2"], "cannot run on input size (3, 2)"),
        (["export", "resnet_tiyn", "--out", "{tmp}"], "did you mean 'resnet_tiny'"),
        (["export", "resnet_tiny", "--set", "num_classes", "--out", "{tmp}"],
         "--set expects KEY=VALUE (e.g. num_classes=10), got 'num_classes'"),
        (["export", "resnet_tiny", "--set", "num_classes=", "--out", "{tmp}"],
         "--set expects KEY=VALUE"),
        (["export", "resnet_tiny", "--set", "head.dropout=[0.1", "--out", "{tmp}"],
         "--set head.dropout: cannot parse value '[0.1'"),
        (["export", "resnet_tiny", "--set", "depth=3", "--out", "{tmp}"],
         "bad --set for resnet_tiny: unknown override 'depth'"),
        (["export", "resnet_tiny", "--set", "num_classes=0", "--out", "{tmp}"],
         "bad --set for resnet_tiny: head.num_classes"),
        (["export", "resnet_tiny", "--set", "a=1", "--set", "a=2", "--out", "{tmp}"],
         "--set a given twice"),
        (["export", "resnet_tiny", "--out", "{tmp}/file/sub"], "is not a writable directory"),
        (["export", "resnet_tiny", "--weights", "{tmp}/none.safetensors", "--out", "{tmp}"],
         "--weights: no such file"),
        (["export", "resnet_tiny", "--input", "3,32", "--out", "{tmp}"],
         "does not fit a 2d model"),
        (["export", "resnet_tiny", "--max-batch", "0", "--out", "{tmp}"],
         "--max-batch must be >= 1"),
        (["export", "resnet_tiny", "--precision", "fp16", "--out", "{tmp}"],
         "--device: precision 'fp16' runs on a CUDA GPU only, and here onnxruntime offers"),
        (["export", "resnet_tiny", "--precision", "fp16", "--device", "cpu", "--out", "{tmp}"],
         "--device: precision 'fp16' runs on a CUDA GPU only, and here device 'cpu' was"),
        (["export", "resnet_tiny", "--precision", "bf16", "--out", "{tmp}"],
         "--precision: precision 'bf16' needs format 'torchscript'"),
    ],
    ids=["summary-unknown", "summary-input", "export-unknown", "set-no-equals", "set-empty",
         "set-unparseable", "set-unknown-key", "set-invalid-value", "set-twice",
         "out-unwritable", "weights-missing", "input-rank", "max-batch", "fp16-no-gpu",
         "fp16-cpu-device", "bf16-onnx"],
)  # fmt: skip
def test_bad_arguments_print_a_clear_error_and_exit_non_zero(capsys, tmp_path, argv, message):
    (tmp_path / "file").write_text("a file, not a directory")
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err
    assert "Traceback" not in err


def test_malformed_input_size_is_a_usage_error(capsys):
    code, _, err = run(capsys, "summary", "resnet_tiny", "--input", "3x32x32")
    assert code == 2 and "expected comma-separated positive ints" in err


def test_export_writes_a_verified_bundle_with_progress_then_reuses_it(capsys, tmp_path):
    argv = ["export", "resnet_tiny", "--set", "num_classes=4", "--max-batch", "2"]
    code, out, err = run(capsys, *argv, "--out", str(tmp_path))
    assert code == 0
    bundle = load_bundle(out.strip())
    assert bundle.manifest["outputs"][0]["shape"] == [-1, 4]
    assert bundle.manifest["overrides"] == {"num_classes": 4}
    assert "[export] exporting resnet_tiny to onnx" in err
    assert "[export] checking parity with eager PyTorch at batch sizes [1, 2]" in err

    code, again, err = run(capsys, *argv, "--out", str(tmp_path))
    assert (code, again) == (0, out)
    assert err.strip() == f"[export] using cached bundle {out.strip()}"


def test_export_torchscript_with_weights_and_a_real_sample(capsys, tmp_path):
    weights = tmp_path / "tiny.safetensors"
    save_weights(create_model("resnet_digits"), weights)
    sample = tmp_path / "sample.npy"
    np.save(sample, np.random.default_rng(0).standard_normal((2, 1, 8, 8), dtype=np.float32))

    code, out, _ = run(capsys, "export", "resnet_digits", "--format", "torchscript",
                       "--weights", str(weights), "--sample", str(sample), "--max-batch", "2",
                       "--out", str(tmp_path / "bundles"))  # fmt: skip

    assert code == 0
    manifest = load_bundle(out.strip()).manifest
    assert (manifest["format"], manifest["weights"]["trained"]) == ("torchscript", True)
    assert manifest["parity"]["checks"][-1]["input"] == "sample"


def test_export_rejects_weights_that_do_not_fit(capsys, tmp_path):
    weights = tmp_path / "other.safetensors"
    save_weights(create_model("resnet_digits"), weights)
    code, _, err = run(capsys, "export", "resnet_tiny", "--weights", str(weights), "--out",
                       str(tmp_path / "bundles"))  # fmt: skip
    assert code == 2 and "resnet_tiny export weights do not fit" in err

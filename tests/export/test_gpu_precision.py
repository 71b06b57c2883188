"""fp16 and bf16 bundles for CUDA: made and verified like int8 (against fp32 on held-out inputs,
on the device given), refused where they cannot run fast. The library verifies on whatever device
it is handed, so these tests verify on the CPU; the server hands it the CUDA device that will
serve the model (tests/service/test_gpu_precision_serving.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from tiny_model import export_tiny

from models.export import PrecisionError, ReducedPrecision, load_bundle
from models.export.onnx_export import OnnxFormat
from service.runtimes import DeviceUnavailableError, load_runtime

TINY_INPUT = (3, 32, 32)


def held_out_check(precision: str, seed: int = 0, **settings) -> ReducedPrecision:
    rng = np.random.default_rng(seed)
    return ReducedPrecision(
        precision=precision,  # type: ignore[arg-type]
        held_out=rng.standard_normal((16, *TINY_INPUT), dtype=np.float32),
        **settings,
    )


@pytest.fixture(scope="module")
def fp16_onnx(bundle_cache):
    return load_bundle(export_tiny(bundle_cache, reduced=held_out_check("fp16")))


def test_fp16_onnx_bundle_holds_only_the_fp16_graph_with_float_io(fp16_onnx):
    graph = onnx.load(str(fp16_onnx.model_file)).graph
    weight_types = {tensor.data_type for tensor in graph.initializer if len(tensor.dims) > 1}

    assert fp16_onnx.manifest["precision"] == "fp16"
    assert list(fp16_onnx.manifest["files"]) == ["model.fp16.onnx"]
    assert weight_types == {onnx.TensorProto.FLOAT16}
    assert {value.type.tensor_type.elem_type for value in (*graph.input, *graph.output)} == {
        onnx.TensorProto.FLOAT
    }


def test_fp16_onnx_logits_stay_close_to_fp32(fp16_onnx, onnx_bundle):
    batch = np.random.default_rng(5).standard_normal((4, *TINY_INPUT), dtype=np.float32)
    fp32 = OnnxFormat().load_runner(load_bundle(onnx_bundle).model_file)(batch)
    fp16 = OnnxFormat().load_runner(fp16_onnx.model_file)(batch)

    assert fp16.dtype == np.float32
    np.testing.assert_allclose(fp16, fp32, atol=2e-2, rtol=2e-2)
    assert not np.array_equal(fp16, fp32)


def test_manifest_records_how_fp16_was_made_and_verified(fp16_onnx):
    check = held_out_check("fp16")
    record = fp16_onnx.manifest["precision_check"]

    assert record["precision"] == "fp16"
    assert record["verified_on"] == "cpu"
    assert record["held_out"] == 16 and record["data_sha256"] == check.data_sha256
    assert record["converter"] == "onnxruntime.transformers.float16"
    assert record["keep_io_types"] is True
    assert record["judged_by"] == "cosine_similarity"  # random-init weights
    assert record["cosine_similarity"] >= check.min_cosine_similarity
    assert "samples" not in record and "method" not in record  # int8's calibration only


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_torchscript_keeps_its_module_and_records_the_check(tmp_path, trained_tiny, precision):
    bundle = load_bundle(
        export_tiny(
            tmp_path, fmt="torchscript", weights=trained_tiny, reduced=held_out_check(precision)
        )
    )
    record = bundle.manifest["precision_check"]

    assert bundle.manifest["precision"] == precision
    assert list(bundle.manifest["files"]) == ["model.pt"]  # cast where it is loaded
    assert record["judged_by"] == "top1_agreement"
    assert record["top1_agreement"] >= 0.99
    assert 0 < record["max_abs_logit_diff"] < 0.5  # the cast really happened, and stayed close


def test_bf16_is_refused_for_onnx(tmp_path):
    with pytest.raises(ValueError, match="precision 'bf16' needs format 'torchscript'"):
        export_tiny(tmp_path, reduced=held_out_check("bf16"))


def test_trained_model_below_top1_agreement_threshold_is_refused(trained_tiny, tmp_path):
    strict = held_out_check("fp16", min_top1_agreement=1.01)
    with pytest.raises(PrecisionError, match=r"fp16 model agrees with fp32 .* try int8"):
        export_tiny(tmp_path, weights=trained_tiny, reduced=strict)
    assert not any(tmp_path.iterdir())


def test_random_init_model_below_cosine_threshold_is_refused(tmp_path):
    strict = held_out_check("bf16", min_cosine_similarity=1.01)
    with pytest.raises(PrecisionError, match=r"bf16 model's logits have mean cosine"):
        export_tiny(tmp_path, fmt="torchscript", reduced=strict)


def test_cache_key_covers_precision_and_device(fp16_onnx, bundle_cache, tmp_path):
    keys = {
        export_tiny(bundle_cache, reduced=held_out_check("fp16")).name,
        export_tiny(bundle_cache, reduced=None).name,
        export_tiny(bundle_cache, reduced=held_out_check("fp16", seed=1)).name,
    }
    assert fp16_onnx.path.name in keys and len(keys) == 3


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_gpu_precision_bundles_do_not_run_on_the_cpu(fp16_onnx, tmp_path, device):
    torchscript = load_bundle(
        export_tiny(tmp_path, fmt="torchscript", reduced=held_out_check("bf16"))
    )
    for bundle, precision in ((fp16_onnx, "fp16"), (torchscript, "bf16")):
        with pytest.raises(DeviceUnavailableError, match=f"is {precision}, which runs on a CUDA"):
            load_runtime(bundle, device)


@pytest.mark.parametrize(
    ("precision", "calibration", "problem"),
    [
        ("int8", None, "int8 needs calibration inputs"),
        ("fp16", np.zeros((2, *TINY_INPUT), np.float32), "only int8 uses them"),
    ],
)
def test_only_int8_calibrates(precision, calibration, problem):
    with pytest.raises(ValueError, match=problem):
        held_out_check(precision, calibration=calibration)

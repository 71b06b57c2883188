"""int8 bundles: static quantization of the fp32 ONNX model, verified against it at export."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from tiny_model import export_tiny

from models.digits import DIGITS_ARCH
from models.export import PrecisionError, ReducedPrecision, export_bundle, load_bundle
from models.export.onnx_export import OnnxFormat
from models.registry import model_default_cfg
from service.calibration import reduced_precision, served_preprocess
from service.config import CalibrationConfig, PreprocessConfig

TINY_INPUT = (3, 32, 32)


def random_calibration(seed: int = 0, **settings) -> ReducedPrecision:
    rng = np.random.default_rng(seed)
    return ReducedPrecision(
        precision="int8",
        calibration=rng.standard_normal((16, *TINY_INPUT), dtype=np.float32),
        held_out=rng.standard_normal((16, *TINY_INPUT), dtype=np.float32),
        **settings,
    )


@pytest.fixture(scope="module")
def int8_bundle(bundle_cache):
    return export_tiny(bundle_cache, reduced=random_calibration())


def test_int8_bundle_holds_only_the_qdq_model_with_float_io(int8_bundle):
    bundle = load_bundle(int8_bundle)
    graph = onnx.load(str(bundle.model_file)).graph
    float_type = onnx.TensorProto.FLOAT

    assert bundle.manifest["precision"] == "int8"
    assert list(bundle.manifest["files"]) == ["model.int8.onnx"]
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in graph.node}
    assert [value.type.tensor_type.elem_type for value in (*graph.input, *graph.output)] == [
        float_type,
        float_type,
    ]


def test_manifest_records_calibration_and_verification(int8_bundle):
    calibration = random_calibration()
    record = load_bundle(int8_bundle).manifest["precision_check"]

    assert record["method"] == "minmax"
    assert record["samples"] == record["held_out"] == 16
    assert record["data_sha256"] == calibration.data_sha256
    assert 0 <= record["top1_agreement"] <= 1
    assert record["cosine_similarity"] >= calibration.min_cosine_similarity
    assert record["judged_by"] == "cosine_similarity"  # random-init weights
    assert record["accuracy"] is None  # no labels given
    assert (record["activation_type"], record["weight_type"]) == ("QUInt8", "QInt8")
    assert record["per_channel"] is True and record["format"] == "QDQ"


def test_int8_logits_stay_close_to_fp32(int8_bundle, onnx_bundle):
    batch = np.random.default_rng(5).standard_normal((4, *TINY_INPUT), dtype=np.float32)
    fp32 = OnnxFormat().load_runner(load_bundle(onnx_bundle).model_file)(batch)
    int8 = OnnxFormat().load_runner(load_bundle(int8_bundle).model_file)(batch)
    cosine = (fp32 * int8).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)

    assert load_bundle(onnx_bundle).manifest["precision"] == "fp32"
    assert cosine.min() > 0.99
    assert not np.array_equal(fp32, int8)


@pytest.mark.parametrize(
    ("reduced", "same_key"),
    [
        (random_calibration(), True),
        (random_calibration(seed=1), False),
        (random_calibration(method="percentile"), False),
        (random_calibration(min_top1_agreement=0.9), False),
        (None, False),
    ],
    ids=["same-calibration", "other-calibration-set", "method", "threshold", "fp32"],
)
def test_cache_key_covers_precision_and_calibration(int8_bundle, bundle_cache, reduced, same_key):
    other = export_tiny(bundle_cache, reduced=reduced)
    assert (other.name == int8_bundle.name) is same_key


def test_trained_model_below_top1_agreement_threshold_is_refused(trained_tiny, tmp_path):
    with pytest.raises(PrecisionError, match=r"top-1 .* below the required 101\.00%"):
        export_tiny(
            tmp_path, weights=trained_tiny, reduced=random_calibration(min_top1_agreement=1.01)
        )
    assert not any(tmp_path.iterdir())  # no bundle, no leftover staging directory


def test_random_init_model_is_judged_by_cosine_similarity(tmp_path):
    lenient_agreement = random_calibration(min_top1_agreement=0.0, min_cosine_similarity=1.01)
    with pytest.raises(PrecisionError, match=r"cosine similarity .* random-init"):
        export_tiny(tmp_path, reduced=lenient_agreement)


def test_trained_model_is_judged_by_top1_agreement(trained_tiny, tmp_path):
    strict_cosine = random_calibration(min_cosine_similarity=1.01)
    bundle = load_bundle(export_tiny(tmp_path, weights=trained_tiny, reduced=strict_cosine))
    assert bundle.manifest["precision_check"]["judged_by"] == "top1_agreement"


def test_int8_needs_onnx(tmp_path):
    with pytest.raises(ValueError, match="precision 'int8' needs format 'onnx'"):
        export_tiny(tmp_path, fmt="torchscript", reduced=random_calibration())


def test_calibration_inputs_must_fit_the_model(tmp_path):
    wrong = dataclasses.replace(
        random_calibration(), calibration=np.zeros((4, 3, 16, 16), np.float32)
    )
    with pytest.raises(ValueError, match=r"int8 calibration inputs must be float32 \(N, 3, 32"):
        export_tiny(tmp_path, reduced=wrong)


def test_digits_int8_keeps_held_out_accuracy(digits_weights, tmp_path):
    input_size = (1, 8, 8)
    preprocess = served_preprocess(PreprocessConfig(), model_default_cfg(DIGITS_ARCH), input_size)
    calibration = reduced_precision(CalibrationConfig(samples=64), "int8", DIGITS_ARCH, preprocess)

    bundle = load_bundle(
        export_bundle(DIGITS_ARCH, weights=digits_weights, cache_dir=tmp_path, reduced=calibration)
    )
    record = bundle.manifest["precision_check"]

    assert record["held_out"] == 360  # the whole test split
    assert record["judged_by"] == "top1_agreement"
    assert record["top1_agreement"] >= 0.99
    assert record["accuracy"]["int8"] >= 0.95
    assert abs(record["accuracy"]["int8"] - record["accuracy"]["fp32"]) <= 0.005


def test_random_init_model_ignores_the_top1_agreement_threshold(tmp_path):
    unreachable_agreement = random_calibration(min_top1_agreement=1.01)
    bundle = load_bundle(export_tiny(tmp_path, reduced=unreachable_agreement))
    assert bundle.manifest["precision_check"]["judged_by"] == "cosine_similarity"

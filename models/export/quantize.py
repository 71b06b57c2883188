"""Static int8 quantization of an exported fp32 ONNX model, verified against it.

ONNX Runtime's tools: `quant_pre_process` (shape inference and graph optimisation, which the
quantizer's docs ask for first), then `quantize_static` in QDQ format with per-channel int8
weights and uint8 activations (U8S8: the pairing ORT's x86-64 kernels are fastest with; on an
AVX-512 VNNI CPU resnet18 runs 2.65x its fp32 rate with U8S8 and 0.75x with S8S8, whose
convolutions take a slower path; VNNI has no U8S8 saturation problem, so `reduce_range` stays
off). QDQ keeps the graph's float32
inputs and outputs. The quantized model is then run against the fp32 one on held-out inputs:
top-1 agreement decides for trained weights, the logits' cosine similarity for random-init ones
(whose top-1 is close to arbitrary).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from models.export.formats import Runner
from models.export.parity import ParityError

CalibrationMethodName = Literal["minmax", "entropy", "percentile"]
ACTIVATION_TYPE = "QUInt8"
WEIGHT_TYPE = "QInt8"
INT8_MODEL_FILENAME = "model.int8.onnx"
CALIBRATION_BATCH = 16
VERIFY_BATCH = 64


class QuantizationError(ParityError):
    """The int8 model disagrees with the fp32 model beyond the configured threshold."""


@dataclass(frozen=True)
class Int8Calibration:
    """What int8 quantization calibrates on and is verified with: preprocessed float32 batches
    (N, *input_shape), calibration and held-out inputs disjoint."""

    calibration: np.ndarray
    held_out: np.ndarray
    held_out_labels: np.ndarray | None = None  # true classes: the accuracies are recorded
    method: CalibrationMethodName = "minmax"
    min_top1_agreement: float = 0.99  # judges trained weights
    min_cosine_similarity: float = 0.99  # judges random-init weights

    def data_sha256(self) -> str:
        digest = hashlib.sha256()
        for array in (self.calibration, self.held_out, self.held_out_labels):
            if array is not None:
                digest.update(str((array.dtype.str, array.shape)).encode())
                digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def settings(self) -> dict[str, Any]:
        """Everything that determines the int8 artifact and its verdict (cache key, manifest)."""
        return {
            "method": self.method,
            "samples": len(self.calibration),
            "held_out": len(self.held_out),
            "data_sha256": self.data_sha256(),
            "min_top1_agreement": self.min_top1_agreement,
            "min_cosine_similarity": self.min_cosine_similarity,
            "activation_type": ACTIVATION_TYPE,
            "weight_type": WEIGHT_TYPE,
            "per_channel": True,
            "format": "QDQ",
        }


def quantize_int8(
    fp32_file: Path,
    calibration: Int8Calibration,
    load_runner: Callable[[Path], Runner],
    *,
    trained: bool,
) -> tuple[Path, dict[str, Any]]:
    """Write the int8 model next to `fp32_file`, verify it, and return its path and the
    manifest's `quantization` record; `QuantizationError` when it fails the threshold."""
    int8_file = fp32_file.with_name(INT8_MODEL_FILENAME)
    _quantize(fp32_file, int8_file, calibration)
    record = verify_int8(load_runner(fp32_file), load_runner(int8_file), calibration, trained)
    return int8_file, record


def _quantize(fp32_file: Path, int8_file: Path, calibration: Int8Calibration) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    with tempfile.TemporaryDirectory(prefix="blockserve-quantize-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_file), str(prepared))
        quantize_static(
            str(prepared),
            str(int8_file),
            _reader(_input_name(prepared), calibration.calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType[ACTIVATION_TYPE],
            weight_type=QuantType[WEIGHT_TYPE],
            calibrate_method=methods[calibration.method],
        )


def _input_name(model_file: Path) -> str:
    import onnx

    return onnx.load(str(model_file), load_external_data=False).graph.input[0].name


def _reader(input_name: str, inputs: np.ndarray) -> Any:
    """An ORT `CalibrationDataReader` over `inputs` in batches."""
    from onnxruntime.quantization import CalibrationDataReader

    class BatchReader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(
                [
                    {input_name: inputs[start : start + CALIBRATION_BATCH]}
                    for start in range(0, len(inputs), CALIBRATION_BATCH)
                ]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    return BatchReader()


def verify_int8(
    fp32: Runner, int8: Runner, calibration: Int8Calibration, trained: bool
) -> dict[str, Any]:
    """Compare int8 with fp32 logits on the held-out inputs; the manifest's record, or
    `QuantizationError` naming the failed measure."""
    reference, quantized = _logits(fp32, calibration.held_out), _logits(int8, calibration.held_out)
    agreement = float((reference.argmax(1) == quantized.argmax(1)).mean())
    cosine = float(_row_cosine(reference, quantized).mean())
    record: dict[str, Any] = {
        **calibration.settings(),
        "top1_agreement": agreement,
        "cosine_similarity": cosine,
        "judged_by": "top1_agreement" if trained else "cosine_similarity",
        "accuracy": None,
    }
    labels = calibration.held_out_labels
    if labels is not None:
        record["accuracy"] = {
            "int8": float((quantized.argmax(1) == labels).mean()),
            "fp32": float((reference.argmax(1) == labels).mean()),
        }
    if trained and agreement < calibration.min_top1_agreement:
        raise QuantizationError(
            f"int8 model agrees with fp32 on top-1 for {agreement:.2%} of "
            f"{len(reference)} held-out inputs, below the required "
            f"{calibration.min_top1_agreement:.2%} (mean logits cosine {cosine:.4f}); try another "
            f"calibration method or more calibration samples, or serve fp32"
        )
    if not trained and cosine < calibration.min_cosine_similarity:
        raise QuantizationError(
            f"int8 model's logits have mean cosine similarity {cosine:.4f} with fp32 on "
            f"{len(reference)} held-out inputs, below the required "
            f"{calibration.min_cosine_similarity}; the weights are random-init, so top-1 "
            f"agreement ({agreement:.2%}) is not judged"
        )
    return record


def _logits(run: Runner, inputs: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [
            np.asarray(run(inputs[start : start + VERIFY_BATCH]))
            for start in range(0, len(inputs), VERIFY_BATCH)
        ]
    ).astype(np.float64)


def _row_cosine(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    return (left * right).sum(axis=1) / np.maximum(norms, np.finfo(np.float64).tiny)

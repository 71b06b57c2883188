"""Static int8 quantization of an exported fp32 ONNX model, verified against it.

ONNX Runtime's tools: `quant_pre_process` (shape inference and graph optimisation, which the
quantizer's docs ask for first), then `quantize_static` in QDQ format with per-channel int8
weights and uint8 activations (U8S8: the pairing ORT's x86-64 kernels are fastest with; on an
AVX-512 VNNI CPU resnet18 runs 2.65x its fp32 rate with U8S8 and 0.75x with S8S8, whose
convolutions take a slower path; VNNI has no U8S8 saturation problem, so `reduce_range` stays
off). QDQ keeps the graph's float32 inputs and outputs. The quantized model is then verified
against the fp32 one (`models.export.precision`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.export.formats import Runner
from models.export.precision import CalibrationMethodName, ReducedPrecision, verify_precision

ACTIVATION_TYPE = "QUInt8"
WEIGHT_TYPE = "QInt8"
INT8_MODEL_FILENAME = "model.int8.onnx"
CALIBRATION_BATCH = 16
# How the int8 graph is made: part of the cache key and the manifest's record.
INT8_SETTINGS: dict[str, Any] = {
    "activation_type": ACTIVATION_TYPE,
    "weight_type": WEIGHT_TYPE,
    "per_channel": True,
    "format": "QDQ",
}


def quantize_int8(
    fp32_file: Path,
    check: ReducedPrecision,
    load_runner: Callable[[Path], Runner],
    *,
    trained: bool,
) -> tuple[Path, dict[str, Any]]:
    """Write the int8 model next to `fp32_file`, verify it, and return its path and the
    manifest's `precision_check` record; `PrecisionError` when it fails the threshold."""
    assert check.calibration is not None  # ReducedPrecision requires it for int8
    int8_file = fp32_file.with_name(INT8_MODEL_FILENAME)
    _quantize(fp32_file, int8_file, check.calibration, check.method)
    record = verify_precision(
        load_runner(fp32_file), load_runner(int8_file), check, trained=trained
    )
    return int8_file, record


def _quantize(
    fp32_file: Path, int8_file: Path, calibration: np.ndarray, method: CalibrationMethodName
) -> None:
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
            _reader(_input_name(prepared), calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType[ACTIVATION_TYPE],
            weight_type=QuantType[WEIGHT_TYPE],
            calibrate_method=methods[method],
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

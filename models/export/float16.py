"""fp16 ONNX graphs: the verified fp32 graph converted by ONNX Runtime's float16 tool, with
float32 inputs and outputs kept (Cast nodes at the edges), so clients and the V2 metadata see
the same FP32 tensors at every precision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FP16_MODEL_FILENAME = "model.fp16.onnx"
# How the fp16 graph is made: part of the cache key and the manifest's record.
FP16_SETTINGS: dict[str, Any] = {
    "converter": "onnxruntime.transformers.float16",
    "keep_io_types": True,
}


def convert_onnx_fp16(fp32_file: Path) -> Path:
    """Write the fp16 graph of `fp32_file` next to it and return its path."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    fp16_file = fp32_file.with_name(FP16_MODEL_FILENAME)
    converted = OnnxModel(
        convert_float_to_float16(
            onnx.load(str(fp32_file)), keep_io_types=FP16_SETTINGS["keep_io_types"]
        )
    )
    converted.topological_sort()  # the converter appends the input Casts after their readers
    onnx.save(converted.model, str(fp16_file))
    onnx.checker.check_model(str(fp16_file), full_check=True)
    return fp16_file

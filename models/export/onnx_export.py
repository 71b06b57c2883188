"""ONNX artifacts: the TorchScript-based `torch.onnx.export(dynamo=False)` at opset 17 with a
dynamic batch dimension, checked with `onnx.checker`, run back with ONNX Runtime on CPU.

Why not the torch.export-based default (`dynamo=True`): on this zoo it exports several times
slower, needs onnxscript, bumps the opset to 18 and always writes an external-data file, while
both graphs match eager equally well and run equally fast in ONNX Runtime. The legacy path is
pinned with torch==2.13.0; docs/export.md has the measurements and the switch-over plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from models.export.formats import CUDA_PROVIDER, ExportedModel, Runner, register_format
from models.export.quiet import TRACING_NOISE, WarningRule, ignoring_warnings

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BATCH_DIM = "batch"
EXPORTER = {"name": "torch.onnx.export", "dynamo": False}
WHY = (
    "TorchScript-based exporter: faster export than dynamo=True, one self-contained opset-17 "
    "file, no onnxscript needed; parity and ONNX Runtime speed equal (docs/export.md)"
)
_EXPORT_NOISE: tuple[WarningRule, ...] = (
    *TRACING_NOISE,
    (DeprecationWarning, r"You are using the legacy TorchScript-based ONNX export"),
    (DeprecationWarning, r"The feature will be removed"),
    # InstanceNorm without running stats always normalises per sample, in eval mode too.
    (UserWarning, r"ONNX export mode is set to TrainingMode\.EVAL, but operator 'instance_norm'"),
)


def _require_dynamic_batch(model_proto: onnx.ModelProto, path: Path) -> None:
    for value in (*model_proto.graph.input, *model_proto.graph.output):
        batch = value.type.tensor_type.shape.dim[0]
        if batch.dim_param != BATCH_DIM:
            raise RuntimeError(f"{path}: {value.name!r} has a static batch dimension ({batch})")


@register_format
class OnnxFormat:
    name = "onnx"
    model_filename = "model.onnx"

    def toolchain(self) -> dict[str, Any]:
        return {**EXPORTER, "opset": OPSET, "torch": torch.__version__, "onnx": onnx.__version__}

    def export(self, model: nn.Module, example: Tensor, out_dir: Path) -> ExportedModel:
        path = out_dir / self.model_filename
        with ignoring_warnings(*_EXPORT_NOISE), torch.no_grad():
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: BATCH_DIM}, OUTPUT_NAME: {0: BATCH_DIM}},
                do_constant_folding=True,
                training=torch.onnx.TrainingMode.EVAL,
            )
        onnx.checker.check_model(str(path), full_check=True)  # by path: handles external data
        model_proto = onnx.load(str(path), load_external_data=False)
        _require_dynamic_batch(model_proto, path)
        opset = next(op.version for op in model_proto.opset_import if op.domain in ("", "ai.onnx"))
        return ExportedModel(model_file=path, opset=opset, exporter={**EXPORTER, "why": WHY})

    def load_runner(self, model_file: Path, device: str = "cpu", precision: str = "fp32") -> Runner:
        # `precision` is the graph's own (an fp16 or int8 file): nothing to apply here.
        import onnxruntime as ort  # only the checks run ONNX Runtime: models/ works without

        session = ort.InferenceSession(str(model_file), providers=_providers(device))
        if device != "cpu" and session.get_providers()[0] != CUDA_PROVIDER:
            raise RuntimeError(f"ONNX Runtime could not run {model_file.name} on {device}")
        input_name = session.get_inputs()[0].name

        def run(batch: np.ndarray) -> np.ndarray:
            return session.run(None, {input_name: batch})[0]

        return run


def _providers(device: str) -> list[str | tuple[str, dict[str, int]]]:
    if device == "cpu":
        return ["CPUExecutionProvider"]
    _, _, index = device.partition(":")
    return [(CUDA_PROVIDER, {"device_id": int(index or 0)})]

"""TorchScript artifacts. Every `torch.jit` call of the project lives here, so a torch.export
(AOTInductor) path can replace this one module later.

The bundle stores the *traced, unfrozen* module: freezing bakes parameters into constants in their
current dtype and device, so the runtime freezes after placing the module (and casting it to fp16
or bf16 on CUDA). On CPU, `optimize_for_inference` (conv-bn folding, MKL-DNN convolutions) then runs
faster than plain freezing on resnet-style models (docs/export.md); its result cannot be saved
and loaded back, another reason to apply it at load time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from models.export.formats import ExportedModel, Runner, register_format
from models.export.quiet import TRACING_NOISE, ignoring_warnings

EXPORTER = {"name": "torch.jit.trace", "frozen_at_load": True, "optimize_for_inference": "cpu"}
# The served precisions a TorchScript module is cast to where it is loaded.
TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def load_torchscript(
    model_file: Path, device: torch.device, *, dtype: torch.dtype = torch.float32
) -> torch.jit.ScriptModule:
    """Load, place, cast to `dtype`, freeze and (on CPU) optimise a traced bundle module."""
    with ignoring_warnings(*TRACING_NOISE):
        module = torch.jit.load(str(model_file), map_location=device).eval().to(dtype)
        module = torch.jit.freeze(module)
        if device.type == "cpu":
            module = torch.jit.optimize_for_inference(module)
    return module


@register_format
class TorchScriptFormat:
    name = "torchscript"
    model_filename = "model.pt"

    def toolchain(self) -> dict[str, Any]:
        return {**EXPORTER, "torch": torch.__version__}

    def export(self, model: nn.Module, example: Tensor, out_dir: Path) -> ExportedModel:
        path = out_dir / self.model_filename
        with ignoring_warnings(*TRACING_NOISE), torch.no_grad():
            traced = torch.jit.trace(model, (example,), check_trace=False)
            torch.jit.save(traced, str(path))
        return ExportedModel(model_file=path, opset=None, exporter=EXPORTER)

    def load_runner(self, model_file: Path, device: str = "cpu", precision: str = "fp32") -> Runner:
        dtype = TORCH_DTYPES[precision]
        module = load_torchscript(model_file, torch.device(device), dtype=dtype)

        def run(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                inputs = torch.from_numpy(batch).to(device=device, dtype=dtype)  # (B, C, *spatial)
                return module(inputs).float().cpu().numpy()  # (B, num_classes)

        return run

"""Inference runtimes for artifact bundles: one interface, one implementation per format."""

from __future__ import annotations

from typing import Any

from models.export import Bundle
from service.runtimes.base import DeviceUnavailableError, Runtime, TensorMeta
from service.runtimes.onnx_runtime import OnnxRuntime
from service.runtimes.torchscript_runtime import TorchScriptRuntime

__all__ = [
    "RUNTIMES",
    "DeviceUnavailableError",
    "OnnxRuntime",
    "Runtime",
    "TensorMeta",
    "TorchScriptRuntime",
    "load_runtime",
]

RUNTIMES: dict[str, type] = {"onnx": OnnxRuntime, "torchscript": TorchScriptRuntime}


def load_runtime(bundle: Bundle, device: str = "auto", **options: Any) -> Runtime:
    """Open `bundle` on `device` (`auto` | `cpu` | `cuda[:N]`; auto prefers a GPU, falls back to
    CPU). Options: onnx → intra_op_threads, inter_op_threads, io_binding; torchscript → fp16."""
    runtime_type = RUNTIMES.get(bundle.format)
    if runtime_type is None:
        raise ValueError(f"no runtime for format {bundle.format!r}; known: {sorted(RUNTIMES)}")
    try:
        return runtime_type(bundle, device, **options)
    except TypeError as error:
        if "unexpected keyword argument" not in str(error):
            raise
        raise ValueError(f"{bundle.format} runtime: {error}") from None

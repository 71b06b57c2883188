"""Inference runtimes for artifact bundles: one interface, one implementation per format."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from models.export import Bundle
from models.lazy import lazy_attributes
from service.runtimes.base import DeviceUnavailableError, Runtime, TensorMeta
from service.runtimes.onnx_runtime import OnnxRuntime

if TYPE_CHECKING:
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

# The TorchScript runtime imports torch: only when asked for (the slim image has no torch).
__getattr__ = lazy_attributes(
    __name__, {"TorchScriptRuntime": "service.runtimes.torchscript_runtime"}
)


def _torchscript_runtime(bundle: Bundle, device: str, **options: Any) -> Runtime:
    from service.runtimes.torchscript_runtime import TorchScriptRuntime

    return TorchScriptRuntime(bundle, device, **options)


RUNTIMES: dict[str, Callable[..., Runtime]] = {
    "onnx": OnnxRuntime,
    "torchscript": _torchscript_runtime,
}


def load_runtime(bundle: Bundle, device: str = "auto", **options: Any) -> Runtime:
    """Open `bundle` on `device` (`auto` | `cpu` | `cuda[:N]`; auto prefers a GPU, falls back to
    CPU). Options: onnx → intra_op_threads, inter_op_threads, io_binding. The bundle's manifest
    says its precision."""
    runtime_type = RUNTIMES.get(bundle.format)
    if runtime_type is None:
        raise ValueError(f"no runtime for format {bundle.format!r}; known: {sorted(RUNTIMES)}")
    try:
        return runtime_type(bundle, device, **options)
    except TypeError as error:
        if "unexpected keyword argument" not in str(error):
            raise
        raise ValueError(f"{bundle.format} runtime: {error}") from None

"""The CUDA device a GPU-only precision (fp16, bf16) is verified and served on, or a clear error
where there is none."""

from __future__ import annotations

from models.export.formats import CUDA_PROVIDER
from service.runtimes.base import DeviceUnavailableError, parse_device


def cuda_device(fmt: str, device: str, precision: str) -> str:
    """`cuda:N` for a model of format `fmt` configured on `device` (`auto`, `cuda[:N]`), or
    `DeviceUnavailableError` naming what is missing."""
    kind, index = parse_device(device)
    missing = None if kind != "cpu" else "device 'cpu' was configured"
    if missing is None:
        missing = _onnxruntime_gap() if fmt == "onnx" else _torch_gap()
    if missing is not None:
        raise DeviceUnavailableError(
            f"precision {precision!r} runs on a CUDA GPU only, and here {missing}; serve it on "
            f"a machine with an NVIDIA GPU (the gpu image or blockserve[gpu]), or choose "
            f"precision 'fp32' or 'int8' for CPU"
        )
    return f"cuda:{index}"


def _onnxruntime_gap() -> str | None:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if CUDA_PROVIDER in available:
        return None
    return f"onnxruntime offers {available}, no {CUDA_PROVIDER}"


def _torch_gap() -> str | None:
    import torch

    if torch.cuda.is_available():
        return None
    return f"torch {torch.__version__} sees no CUDA GPU"

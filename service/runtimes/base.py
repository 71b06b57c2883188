"""The runtime interface shared by every artifact format, and the checks they all apply."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from models.export.precision import GPU_PRECISIONS

if TYPE_CHECKING:
    from models.export import Bundle

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


class DeviceUnavailableError(RuntimeError):
    """The requested device (e.g. `cuda`) is not usable in this process."""


@dataclass(frozen=True)
class TensorMeta:
    name: str
    shape: tuple[int, ...]  # -1 marks the dynamic batch dimension
    dtype: str  # numpy dtype name, e.g. "float32"

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> TensorMeta:
        return cls(name=entry["name"], shape=tuple(entry["shape"]), dtype=entry["dtype"])


class Runtime(Protocol):
    """A loaded artifact. `run` is safe to call from several threads at once."""

    device: str
    input_meta: TensorMeta
    output_meta: TensorMeta

    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 (B, *input_shape) -> (B, num_classes) logits."""
        ...

    def warmup(self) -> None: ...


def parse_device(device: str) -> tuple[str, int]:
    """`auto` | `cpu` | `cuda` | `cuda:N` -> (kind, index)."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    kind, _, index = device.partition(":")
    return kind, int(index or 0)


def checked_precision(bundle: Bundle, on_gpu: bool, cpu_reason: str) -> str:
    """The precision the bundle's manifest records; fp16 and bf16 run on a GPU only, so off one
    a `DeviceUnavailableError` ending with `cpu_reason`."""
    precision = bundle.manifest.get("precision", "fp32")
    if precision in GPU_PRECISIONS and not on_gpu:
        raise DeviceUnavailableError(
            f"bundle {bundle.path.name} is {precision}, which runs on a CUDA GPU only; {cpu_reason}"
        )
    return precision


def check_batch(batch: Any, meta: TensorMeta) -> np.ndarray:
    """The batch as a C-contiguous array, or a ValueError naming expected vs got."""
    if not isinstance(batch, np.ndarray):
        raise ValueError(f"{meta.name!r}: expected a {_expected(meta)}, got {type(batch).__name__}")
    if batch.dtype != np.dtype(meta.dtype):
        raise ValueError(f"{meta.name!r}: expected a {_expected(meta)}, got dtype {batch.dtype}")
    fits = batch.ndim == len(meta.shape) and all(
        want in (-1, got) for want, got in zip(meta.shape, batch.shape, strict=True)
    )
    if not fits or batch.shape[0] < 1:
        raise ValueError(f"{meta.name!r}: expected a {_expected(meta)}, got shape {batch.shape}")
    return np.ascontiguousarray(batch)


def _expected(meta: TensorMeta) -> str:
    """What a batch must be, for error messages (built only when one is raised)."""
    return f"{meta.dtype} array of shape ({', '.join(map(_dim, meta.shape))})"


def warmup_batches(meta: TensorMeta, sizes: tuple[int, ...] = (1, 2)) -> list[np.ndarray]:
    """Zero batches to run before serving: first calls allocate memory and specialise graphs."""
    return [np.zeros((size, *meta.shape[1:]), dtype=meta.dtype) for size in sizes]


def _dim(size: int) -> str:
    return "B" if size == -1 else str(size)

"""Artifact formats by name: each turns an eager model into files and can run those files back
for the parity check. Formats register themselves with `@register_format`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor, nn

Runner = Callable[[np.ndarray], np.ndarray]  # float32 (B, *input_shape) -> float32 outputs
CUDA_PROVIDER = "CUDAExecutionProvider"  # ONNX Runtime's, for artifacts run on a GPU


@dataclass(frozen=True)
class ExportedModel:
    model_file: Path
    opset: int | None
    exporter: dict[str, Any] = field(default_factory=dict)  # recorded verbatim in the manifest


class ArtifactFormat(Protocol):
    name: str

    def toolchain(self) -> dict[str, Any]:
        """Everything about the exporter that changes the artifact; part of the cache key."""
        ...

    def export(self, model: nn.Module, example: Tensor, out_dir: Path) -> ExportedModel: ...

    def load_runner(self, model_file: Path, device: str = "cpu", precision: str = "fp32") -> Runner:
        """Run the artifact on `device` (`cpu`, `cuda[:N]`) at `precision` the way a runtime
        would, for the parity and precision checks."""
        ...


# Every format a bundle may hold; bundles are read without importing (or registering) them.
FORMAT_NAMES = ("onnx", "torchscript")
FORMATS: dict[str, ArtifactFormat] = {}
FormatT = TypeVar("FormatT", bound=ArtifactFormat)


def register_format(cls: type[FormatT]) -> type[FormatT]:
    if cls.name not in FORMAT_NAMES:
        raise ValueError(f"format {cls.name!r} is not one of FORMAT_NAMES {FORMAT_NAMES}")
    FORMATS[cls.name] = cls()
    return cls


def get_format(name: str) -> ArtifactFormat:
    if name not in FORMATS:
        raise ValueError(f"unknown export format {name!r}; choose one of {sorted(FORMATS)}")
    return FORMATS[name]

"""Loading and saving model weights safely.

`.safetensors` files are read with safetensors; anything else is a torch checkpoint read with
``torch.load(..., weights_only=True)``, which refuses to unpickle arbitrary objects. Checkpoints
wrapped as ``{"state_dict": ...}`` or ``{"model": ...}`` are unwrapped.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from models.files import atomic_path

__all__ = [
    "ShapeMismatch",
    "WeightsLoadError",
    "WeightsMismatchError",
    "check_shapes",
    "load_weights",
    "read_state_dict",
    "save_weights",
]

SAFETENSORS_SUFFIX = ".safetensors"
CHECKPOINT_WRAPPERS = ("state_dict", "model")
_LISTED_PER_KIND = 20


class WeightsLoadError(ValueError):
    """A weights file that cannot be read as a state dict."""


@dataclass(frozen=True)
class ShapeMismatch:
    key: str
    expected: tuple[int, ...]
    found: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.key}: model {list(self.expected)}, file {list(self.found)}"


class WeightsMismatchError(ValueError):
    """The weights' keys or shapes do not match the model."""

    def __init__(
        self, missing: list[str], unexpected: list[str], shape_mismatches: list[ShapeMismatch]
    ) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.shape_mismatches = shape_mismatches
        parts = [
            _listing("missing keys", missing),
            _listing("unexpected keys", unexpected),
            _listing("shape mismatches", [str(mismatch) for mismatch in shape_mismatches]),
        ]
        super().__init__("weights do not match the model:\n" + "\n".join(filter(None, parts)))


def _listing(kind: str, items: list[str]) -> str:
    if not items:
        return ""
    shown = items[:_LISTED_PER_KIND]
    more = f"\n    ... and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
    return f"  {len(items)} {kind}:\n" + "\n".join(f"    {item}" for item in shown) + more


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a flat ``{name: tensor}`` state dict from a safetensors file or torch checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == SAFETENSORS_SUFFIX:
        try:
            return load_file(path, device="cpu")
        except Exception as error:  # safetensors raises its own SafetensorError
            raise WeightsLoadError(f"{path} is not a valid safetensors file: {error}") from error
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise WeightsLoadError(
            f"refusing to load {path}: it pickles objects other than tensors and plain "
            f"containers, and weights are only ever loaded with weights_only=True ({error})"
        ) from error
    except (RuntimeError, EOFError) as error:
        raise WeightsLoadError(f"{path} is not a readable torch checkpoint: {error}") from error
    return _unwrap(checkpoint, path)


def _unwrap(checkpoint: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(checkpoint, dict):
        for wrapper in CHECKPOINT_WRAPPERS:
            if isinstance(checkpoint.get(wrapper), dict):
                checkpoint = checkpoint[wrapper]
                break
    if not isinstance(checkpoint, dict):
        raise WeightsLoadError(
            f"{path} holds a {type(checkpoint).__name__}, expected a state dict (a dict of "
            f"tensors, optionally under one of {list(CHECKPOINT_WRAPPERS)})"
        )
    not_tensors = [key for key, value in checkpoint.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise WeightsLoadError(f"{path}: entries are not tensors: {not_tensors[:10]}")
    return checkpoint


def check_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], strict: bool) -> None:
    """Raise WeightsMismatchError on shape mismatches, and with `strict` on missing or
    unexpected keys."""
    check_shapes(
        {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()},
        {key: tuple(tensor.shape) for key, tensor in state_dict.items()},
        strict,
    )


def check_shapes(
    expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], strict: bool
) -> None:
    """`check_state_dict` on shapes alone: the model's `expected` ones against a file's."""
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    mismatches = [
        ShapeMismatch(key, shape, found[key])
        for key, shape in expected.items()
        if key in found and found[key] != shape
    ]
    if mismatches or (strict and (missing or unexpected)):
        raise WeightsMismatchError(missing, unexpected, mismatches)


def load_weights(model: nn.Module, path: str | Path, *, strict: bool = True) -> None:
    """Load weights from `path` into `model` in place.

    With `strict`, every model key must be present and no other key may be; shapes must
    always match. Violations raise WeightsMismatchError listing all three kinds.
    """
    state_dict = read_state_dict(path)
    check_state_dict(model, state_dict, strict)
    model.load_state_dict(state_dict, strict=strict)


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Write `model`'s state dict to a `.safetensors` file."""
    path = Path(path)
    if path.suffix != SAFETENSORS_SUFFIX:
        raise ValueError(
            f"save_weights writes safetensors; use a {SAFETENSORS_SUFFIX} path: {path}"
        )
    state_dict = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        save_file(state_dict, partial, metadata={"format": "pt"})

"""Reduced precision: what a model served below fp32 is verified with, and the verification, one
rule for every precision.

int8 is made by static quantization (`models.export.quantize`), fp16 ONNX graphs by converting the
fp32 graph (`models.export.float16`), and fp16/bf16 TorchScript modules are cast where they are
loaded. Each time the reduced model runs against the fp32 one on held-out inputs, on the device
that will serve it: top-1 agreement judges trained weights, the mean cosine similarity of the
logits random-init ones (whose top-1 is close to arbitrary). Reading these rules needs no torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

if TYPE_CHECKING:
    from models.export.formats import Runner

Precision = Literal["fp32", "fp16", "bf16", "int8"]
ReducedPrecisionName = Literal["fp16", "bf16", "int8"]
CalibrationMethodName = Literal["minmax", "entropy", "percentile"]
CALIBRATION_METHODS: tuple[str, ...] = get_args(CalibrationMethodName)
GPU_PRECISIONS = ("fp16", "bf16")  # arithmetic that only a CUDA device runs fast
PRECISIONS: tuple[str, ...] = get_args(Precision)
# Formats each precision can be served in. ONNX Runtime's CUDA execution provider has no
# dependable bfloat16 convolution (microsoft/onnxruntime#25740), so bf16 is TorchScript's.
PRECISION_FORMATS: dict[str, tuple[str, ...]] = {
    "fp32": ("onnx", "torchscript"),
    "fp16": ("onnx", "torchscript"),
    "bf16": ("torchscript",),
    "int8": ("onnx",),
}
VERIFY_BATCH = 64


class PrecisionError(Exception):
    """The reduced-precision model disagrees with fp32 beyond the configured threshold."""


def precision_format_problem(precision: str, fmt: str) -> str | None:
    """Why `precision` cannot be served as `fmt`, or None when it can."""
    formats = PRECISION_FORMATS[precision]
    if fmt in formats:
        return None
    why = (
        " (ONNX Runtime has no dependable bfloat16 convolution on CUDA)"
        if precision == "bf16"
        else ""
    )
    return (
        f"precision {precision!r} needs format {' or '.join(map(repr, formats))}, not {fmt!r}{why}"
    )


@dataclass(frozen=True)
class ReducedPrecision:
    """A precision below fp32 and what it is verified with: preprocessed float32 batches
    (N, *input_shape); int8 also calibrates its activation ranges on `calibration`, disjoint from
    `held_out`."""

    precision: ReducedPrecisionName
    held_out: np.ndarray
    held_out_labels: np.ndarray | None = None  # true classes: the accuracies are recorded
    calibration: np.ndarray | None = None  # int8 only
    method: CalibrationMethodName = "minmax"  # int8 only
    min_top1_agreement: float = 0.99  # judges trained weights
    min_cosine_similarity: float = 0.99  # judges random-init weights
    # Where the reduced model is verified: fp16 and bf16 on the CUDA device that serves them.
    device: str = "cpu"

    def __post_init__(self) -> None:
        if (self.precision == "int8") != (self.calibration is not None):
            raise ValueError("int8 needs calibration inputs, and only int8 uses them")
        if len(self.held_out) == 0:
            raise ValueError(f"{self.precision} needs at least one held-out input to verify on")

    @cached_property
    def data_sha256(self) -> str:
        """The inputs' (and labels') hash, taken once: a ReducedPrecision's arrays are not
        changed after it is made."""
        digest = hashlib.sha256()
        for array in (self.calibration, self.held_out, self.held_out_labels):
            if array is not None:
                digest.update(str((array.dtype.str, array.shape)).encode())
                digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def settings(self) -> dict[str, Any]:
        """What determines the reduced model and its verdict (cache key, manifest)."""
        settings: dict[str, Any] = {
            "held_out": len(self.held_out),
            "data_sha256": self.data_sha256,
            "min_top1_agreement": self.min_top1_agreement,
            "min_cosine_similarity": self.min_cosine_similarity,
            "verified_on": self.device,
        }
        if self.calibration is not None:
            settings |= {"method": self.method, "samples": len(self.calibration)}
        return settings


def verify_precision(
    fp32: Runner, reduced: Runner, check: ReducedPrecision, *, trained: bool
) -> dict[str, Any]:
    """Compare the reduced model's logits with fp32's on the held-out inputs: the manifest's
    `precision_check` record, or `PrecisionError` naming the failed measure."""
    name = check.precision
    reference, candidate = _logits(fp32, check.held_out), _logits(reduced, check.held_out)
    agreement = float((reference.argmax(1) == candidate.argmax(1)).mean())
    cosine = float(_row_cosine(reference, candidate).mean())
    record: dict[str, Any] = {
        "precision": name,
        **check.settings(),
        "top1_agreement": agreement,
        "cosine_similarity": cosine,
        "max_abs_logit_diff": float(np.abs(reference - candidate).max()),
        "judged_by": "top1_agreement" if trained else "cosine_similarity",
        "accuracy": None,
    }
    labels = check.held_out_labels
    if labels is not None:
        record["accuracy"] = {
            name: float((candidate.argmax(1) == labels).mean()),
            "fp32": float((reference.argmax(1) == labels).mean()),
        }
    if trained and agreement < check.min_top1_agreement:
        raise PrecisionError(
            f"{name} model agrees with fp32 on top-1 for {agreement:.2%} of "
            f"{len(reference)} held-out inputs, below the required "
            f"{check.min_top1_agreement:.2%} (mean logits cosine {cosine:.4f}); "
            f"{_remedy(name)}, or serve fp32"
        )
    if not trained and cosine < check.min_cosine_similarity:
        raise PrecisionError(
            f"{name} model's logits have mean cosine similarity {cosine:.4f} with fp32 on "
            f"{len(reference)} held-out inputs, below the required "
            f"{check.min_cosine_similarity}; the weights are random-init, so top-1 "
            f"agreement ({agreement:.2%}) is not judged"
        )
    return record


def _remedy(precision: str) -> str:
    if precision == "int8":
        return "try another calibration method or more calibration samples"
    return f"try {'fp16' if precision == 'bf16' else 'int8'}"


def _logits(run: Runner, inputs: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [
            np.asarray(run(inputs[start : start + VERIFY_BATCH]), dtype=np.float64)
            for start in range(0, len(inputs), VERIFY_BATCH)
        ]
    )


def _row_cosine(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    return (left * right).sum(axis=1) / np.maximum(norms, np.finfo(np.float64).tiny)

"""Parity: run an exported artifact against the eager model on the same inputs.

Relative error is measured against the largest reference magnitude of each input batch,
max|exported - eager| / max|eager|, which stays meaningful for logits near zero where an
element-wise ratio explodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import torch
from torch import nn

from models.export.formats import Runner

FP32_RTOL = 1e-4
_TINY = float(np.finfo(np.float32).tiny)


class ParityError(Exception):
    """The exported artifact disagrees with eager PyTorch beyond tolerance."""


class ParityCheck(TypedDict):
    """One input batch's entry in the manifest's parity record."""

    input: str
    batch: int
    max_abs_err: float
    max_rel_err: float


@dataclass(frozen=True)
class ParityInput:
    label: str  # e.g. "random seed 1" or "sample"
    batch: np.ndarray  # float32 (B, *input_shape)


def random_inputs(
    input_shape: Sequence[int], batch_sizes: Sequence[int], *, seed: int = 0
) -> list[ParityInput]:
    """One standard-normal batch per size (preprocessed images are roughly N(0, 1))."""
    inputs = []
    for offset, batch_size in enumerate(batch_sizes):
        rng = np.random.default_rng(seed + offset)
        batch = rng.standard_normal((batch_size, *input_shape), dtype=np.float32)
        inputs.append(ParityInput(f"random seed {seed + offset}", batch))
    return inputs


def check_parity(
    eager: nn.Module, exported: Runner, inputs: Sequence[ParityInput], *, rtol: float = FP32_RTOL
) -> dict:
    """Compare on every input; return the manifest's parity record or raise ParityError."""
    checks: list[ParityCheck] = []
    for item in inputs:
        with torch.inference_mode():
            expected = eager(torch.from_numpy(item.batch)).numpy()
        actual = np.asarray(exported(item.batch))
        if actual.shape != expected.shape:
            raise ParityError(
                f"exported output shape {actual.shape} != eager {expected.shape} "
                f"on {item.label} (batch {len(item.batch)})"
            )
        if not np.isfinite(actual).all():
            raise ParityError(f"exported output has NaN/inf on {item.label}")
        max_abs = float(np.abs(actual - expected).max())
        checks.append(
            {
                "input": item.label,
                "batch": len(item.batch),
                "max_abs_err": max_abs,
                "max_rel_err": max_abs / max(float(np.abs(expected).max()), _TINY),
            }
        )
    worst = max(checks, key=lambda check: check["max_rel_err"])
    record = {
        "passed": worst["max_rel_err"] <= rtol,
        "max_abs_err": max(check["max_abs_err"] for check in checks),
        "max_rel_err": worst["max_rel_err"],
        "rtol": rtol,
        "dtype": "float32",
        "checks": checks,
    }
    if not record["passed"]:
        raise ParityError(
            f"exported model differs from eager PyTorch: max relative error "
            f"{worst['max_rel_err']:.3g} > {rtol:g} on {worst['input']} (batch {worst['batch']}, "
            f"max abs error {worst['max_abs_err']:.3g})"
        )
    return record

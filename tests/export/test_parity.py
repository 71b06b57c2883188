"""The parity check measures exported-vs-eager error and fails loudly above tolerance."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_model import TINY
from torch import nn

from models.export import FORMATS, ParityError, export_bundle
from models.export.parity import FP32_RTOL, check_parity, random_inputs


class Scale(nn.Module):
    def forward(self, x):
        return x.flatten(1) * 3.0  # (B, C*L)


def eager_numpy(batch: np.ndarray) -> np.ndarray:
    return batch.reshape(len(batch), -1) * 3.0


def test_random_inputs_are_seeded_and_sized_per_batch():
    first = random_inputs((2, 5), [1, 7], seed=3)
    again = random_inputs((2, 5), [1, 7], seed=3)
    assert [item.batch.shape for item in first] == [(1, 2, 5), (7, 2, 5)]
    assert all(np.array_equal(a.batch, b.batch) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0].batch, random_inputs((2, 5), [1], seed=4)[0].batch)


def test_errors_within_tolerance_are_recorded_per_input():
    inputs = random_inputs((2, 5), [1, 7])

    record = check_parity(Scale(), lambda batch: eager_numpy(batch) * (1 + 1e-6), inputs)

    assert record["passed"] and record["rtol"] == FP32_RTOL
    assert [check["batch"] for check in record["checks"]] == [1, 7]
    assert 0 < record["max_rel_err"] == pytest.approx(1e-6, rel=0.05)
    assert record["max_abs_err"] > 0


def test_relative_error_above_tolerance_raises_parity_error():
    inputs = random_inputs((2, 5), [1, 7])

    def off_by_a_bit(batch):
        return eager_numpy(batch) + 1e-3 * np.abs(eager_numpy(batch)).max()

    with pytest.raises(ParityError, match=r"max relative error 0\.001 > 0\.0001"):
        check_parity(Scale(), off_by_a_bit, inputs)


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (lambda batch: eager_numpy(batch)[:, :3], "output shape"),
        (lambda batch: eager_numpy(batch) * np.nan, "NaN/inf"),
    ],
    ids=["shape", "nan"],
)
def test_wrong_shapes_and_non_finite_outputs_raise_parity_error(broken, message):
    with pytest.raises(ParityError, match=message):
        check_parity(Scale(), broken, random_inputs((2, 5), [2]))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_export_of_a_broken_artifact_fails_loudly_and_writes_no_bundle(fmt, tmp_path, monkeypatch):
    artifact_format = FORMATS[fmt]
    load_runner = artifact_format.load_runner

    def broken_runner(model_file):
        run = load_runner(model_file)
        return lambda batch: run(batch) * 1.01

    monkeypatch.setattr(artifact_format, "load_runner", broken_runner)
    with pytest.raises(ParityError, match="differs from eager PyTorch"):
        export_bundle(TINY, fmt=fmt, cache_dir=tmp_path, max_batch=2)
    assert list(tmp_path.iterdir()) == []

"""Judging the outcomes the client-venv scripts print: answers against the reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

TOLERANCE = 1e-4  # float32 logits; batching may change the summation order


def result_of(outcomes: dict[str, Any], case: str) -> Any:
    """The case's result, or the test fails with the client's error."""
    if case not in outcomes:
        pytest.fail(f"case {case!r} did not run; ran: {sorted(outcomes)}")
    outcome = outcomes[case]
    if "error" in outcome:
        pytest.fail(f"{outcome['error']}\n{outcome.get('traceback', '')}")
    return outcome["result"]


def assert_logits(answer: dict[str, Any], logits: np.ndarray) -> None:
    assert answer["datatype"] == "FP32"
    np.testing.assert_allclose(np.array(answer["data"]), logits, rtol=TOLERANCE, atol=TOLERANCE)


def assert_classification(
    answer: dict[str, Any], logits: np.ndarray, labels: list[str], class_count: int
) -> None:
    """Triton's classification: per image the top `class_count` as "score:index[:label]"."""
    assert answer["datatype"] == "BYTES"
    rows = answer["data"]
    assert np.shape(rows) == (len(logits), class_count)
    for row, image_logits in zip(rows, logits, strict=True):
        entries = [entry.split(":", 2) for entry in row]
        indices = [int(entry[1]) for entry in entries]
        assert indices == list(np.argsort(-image_logits, kind="stable")[:class_count])
        for entry, index in zip(entries, indices, strict=True):
            assert float(entry[0]) == pytest.approx(image_logits[index], abs=TOLERANCE)
            assert entry[2:] in ([], [labels[index]])

"""Model outputs -> answers: softmax top-k classes."""

from __future__ import annotations

import numpy as np


def top_k_predictions(logits: np.ndarray, labels: list[str], top_k: int) -> list[list[dict]]:
    """Softmax scores of the `top_k` best classes per image (`top_k` clamped to the classes)."""
    logits = logits.astype(np.float64)  # (N, K)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    scores = exp / exp.sum(axis=1, keepdims=True)
    best = top_indices(scores, top_k)
    return [
        [{"label": labels[i], "index": int(i), "score": float(row[i])} for i in indices]
        for row, indices in zip(scores, best, strict=True)
    ]


def top_indices(scores: np.ndarray, count: int) -> np.ndarray:
    """Per row of `scores` (N, K): the indices of the `count` highest (clamped to K), highest
    first, ties by lower index. Shape (N, min(count, K))."""
    return np.argsort(-scores, axis=1, kind="stable")[:, : min(count, scores.shape[1])]

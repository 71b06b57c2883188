"""Model outputs -> answers: softmax top-k classes."""

from __future__ import annotations

import numpy as np


def top_k_predictions(logits: np.ndarray, labels: list[str], top_k: int) -> list[list[dict]]:
    """Softmax scores of the `top_k` best classes per image (`top_k` clamped to the classes)."""
    logits = logits.astype(np.float64)  # (N, K)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    scores = exp / exp.sum(axis=1, keepdims=True)
    best = np.argsort(-scores, axis=1, kind="stable")[:, : min(top_k, scores.shape[1])]
    return [
        [{"label": labels[i], "index": int(i), "score": float(row[i])} for i in indices]
        for row, indices in zip(scores, best, strict=True)
    ]

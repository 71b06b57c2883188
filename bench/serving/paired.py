"""Head-to-head comparisons: two measurements alternated in short rounds.

On a shared 2-core VM the same measurement drifts by ±15 % within minutes, so a ratio of two
numbers taken minutes apart (or the best of several noisy ceiling points against one served
point) mostly measures the drift. Here each comparison runs its two sides back to back, in the
order A B, B A, A B, ... so that a slow drift weighs on both sides alike, and reports the ratio
of the sums together with the spread of the per-round ratios.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class HeadToHead:
    name: str  # the target it measures (bench.serving.targets)
    a: str  # label of the reference side
    b: str  # label of the measured side (blockserve over HTTP)
    unit: str  # "img/s", "req/s" or "ms"
    a_values: list[float]
    b_values: list[float]

    @property
    def a_mean(self) -> float:
        return sum(self.a_values) / len(self.a_values)

    @property
    def b_mean(self) -> float:
        return sum(self.b_values) / len(self.b_values)

    @property
    def ratio(self) -> float:
        """b ÷ a over all rounds (a ratio of sums, not a mean of ratios)."""
        total = sum(self.a_values)
        return sum(self.b_values) / total if total else float("inf")

    @property
    def difference(self) -> float:
        """Mean of b − a over the rounds (for latencies)."""
        return self.b_mean - self.a_mean

    def round_ratios(self) -> list[float]:
        return [
            b / a if a else float("inf") for a, b in zip(self.a_values, self.b_values, strict=True)
        ]


def alternate(
    measure_a: Callable[[], float], measure_b: Callable[[], float], rounds: int
) -> tuple[list[float], list[float]]:
    """`rounds` values of each side, measured A B, B A, A B, ..."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    a_values, b_values = [], []
    for index in range(rounds):
        sides = ((measure_a, a_values), (measure_b, b_values))
        for measure, values in sides if index % 2 == 0 else reversed(sides):
            values.append(measure())
    return a_values, b_values

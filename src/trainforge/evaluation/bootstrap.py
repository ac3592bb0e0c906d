"""Paired bootstrap confidence intervals: base and tuned are scored on the same examples, so each
resample draws the same example indices for both, and the interval is on the difference itself."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RESAMPLES = 1000


def paired_interval(
    statistic: Callable[[np.ndarray], float],
    size: int,
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(indices)`` over seeded resamples of ``range(size)``."""
    if size == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, size, size)) for _ in range(resamples)])
    tail = (1 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def relative_ppl_improvement(
    base: tuple[np.ndarray, np.ndarray], tuned: tuple[np.ndarray, np.ndarray]
) -> Callable[[np.ndarray], float]:
    """(ppl_base - ppl_tuned) / ppl_base on the examples at the given indices."""

    def statistic(indices: np.ndarray) -> float:
        tokens = max(int(base[1][indices].sum()), 1)
        ppl_base = np.exp(base[0][indices].sum() / tokens)
        ppl_tuned = np.exp(tuned[0][indices].sum() / tokens)
        return float((ppl_base - ppl_tuned) / ppl_base)

    return statistic


def mean_difference(base: np.ndarray, tuned: np.ndarray) -> Callable[[np.ndarray], float]:
    def statistic(indices: np.ndarray) -> float:
        return float(tuned[indices].mean() - base[indices].mean())

    return statistic

"""The numbers vibe-edge measures with: distribution distances for model quality (convert's
verification) and robust summaries of timings (the benchmarks). Pure numpy/statistics."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np

__all__ = ["kl_divergence", "log_softmax", "middle_half", "next_token_nll", "p95", "percentile"]


def log_softmax(x: np.ndarray) -> np.ndarray:
    # float32 is enough: per-token KLs we report are >= 1e-5 and summed in float64 below.
    x = np.asarray(x, dtype=np.float32)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True, dtype=np.float64)).astype(np.float32)


def kl_divergence(p_log: np.ndarray, q_log: np.ndarray) -> np.ndarray:
    """KL(P || Q) per row of log-probabilities, P the reference."""
    return (np.exp(p_log) * (p_log - q_log)).sum(axis=-1)


def next_token_nll(log_probs: np.ndarray, window: Sequence[int]) -> np.ndarray:
    """Negative log-likelihood of each next token in the window (positions 0..n-2 predict 1..n-1)."""
    nxt = np.asarray(window[1:])
    return -log_probs[np.arange(len(nxt)), nxt]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th quantile (0 < q <= 1) by nearest rank: a value that was measured, not an
    interpolation between two. None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def p95(values: Sequence[float]) -> float:
    """The 95th percentile, nearest rank."""
    result = percentile(values, 0.95)
    if result is None:
        raise ValueError("p95 of no values")
    return result


def middle_half(values: Sequence[float]) -> list[float]:
    """The first and third quartiles: how far one pair's noise could move a median."""
    values = list(values)
    if len(values) < 2:
        return [round(values[0], 3)] * 2 if values else [math.nan, math.nan]
    q1, _q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return [round(q1, 3), round(q3, 3)]

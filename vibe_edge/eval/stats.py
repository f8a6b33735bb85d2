"""The statistics an eval report needs, in plain Python (no SciPy).

- Wilson score interval for an accuracy (k correct of n): honest at small n and near 0 or 1,
  where the textbook p +- 1.96 sqrt(p(1-p)/n) interval collapses or leaves [0, 1].
- Paired comparison of two systems on the same problems: the difference of accuracies with
  Newcombe's interval for paired proportions (his method 10, built from the two Wilson
  intervals and the pairs' correlation), and McNemar's exact test (a two-sided binomial test on
  the discordant pairs) for whether the difference is real.
- pass@k from n samples with c correct (Chen et al. 2021's unbiased estimator).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Z95", "PairedComparison", "mcnemar_exact", "mean_interval", "paired_comparison",
           "pass_at_k", "wilson_interval"]

Z95 = 1.959963984540054


def wilson_interval(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for correct/total ((0, 1) when total is 0)."""
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values: Sequence[float], z: float = Z95) -> tuple[float, float]:
    """Normal-approximation interval for a mean of per-problem scores in [0, 1] (pass@1 over
    several samples per problem), clipped to [0, 1]."""
    n = len(values)
    if n == 0:
        return 0.0, 1.0
    mean = sum(values) / n
    if n == 1:
        return 0.0, 1.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = z * math.sqrt(var / n)
    return max(0.0, mean - half), min(1.0, mean + half)


def difference_interval(values: Sequence[float], z: float = Z95) -> tuple[float, float]:
    """Normal-approximation interval for a mean of paired per-problem differences in [-1, 1]
    (maj@K correct minus the problem's pass@1), clipped to [-1, 1]."""
    n = len(values)
    if n < 2:
        return -1.0, 1.0
    mean = sum(values) / n
    half = z * math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
    return max(-1.0, mean - half), min(1.0, mean + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b pairs right only in A, c right only in B."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedComparison:
    n: int               # problems present in both
    accuracy_a: float
    accuracy_b: float
    difference: float    # accuracy_a - accuracy_b
    low: float           # 95% interval of the difference
    high: float
    only_a: int          # right in A, wrong in B
    only_b: int          # right in B, wrong in A
    p_value: float       # McNemar exact

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05

    def to_dict(self) -> dict[str, float | int | bool]:
        return {"n": self.n, "accuracy_a": self.accuracy_a, "accuracy_b": self.accuracy_b,
                "difference": self.difference, "ci95": [self.low, self.high],
                "only_a": self.only_a, "only_b": self.only_b, "p_value": self.p_value,
                "significant": self.significant}


def paired_comparison(pairs: Sequence[tuple[bool, bool]], z: float = Z95) -> PairedComparison:
    """A against B on the same problems: each pair is (A correct, B correct)."""
    n = len(pairs)
    both = sum(1 for a, b in pairs if a and b)
    only_a = sum(1 for a, b in pairs if a and not b)
    only_b = sum(1 for a, b in pairs if b and not a)
    neither = n - both - only_a - only_b
    if n == 0:
        return PairedComparison(0, 0.0, 0.0, 0.0, -1.0, 1.0, 0, 0, 1.0)
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = wilson_interval(both + only_a, n, z)
    l2, u2 = wilson_interval(both + only_b, n, z)
    denom = (both + only_a) * (neither + only_b) * (both + only_b) * (neither + only_a)
    phi = (both * neither - only_a * only_b) / math.sqrt(denom) if denom > 0 else 0.0
    delta = p1 - p2
    low = delta - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = delta + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    return PairedComparison(n, p1, p2, delta, max(-1.0, low), min(1.0, high), only_a, only_b,
                            mcnemar_exact(only_a, only_b))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c of them correct) is correct."""
    if k > n:
        raise ValueError(f"k ({k}) must be <= n ({n})")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))

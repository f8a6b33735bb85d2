"""Intervals and tests against published reference values."""

from __future__ import annotations

import pytest

from vibe_edge.eval.stats import mcnemar_exact, mean_interval, paired_comparison, pass_at_k, wilson_interval


def test_wilson_matches_reference_values():
    # Newcombe (1998), Statistics in Medicine 17:857, table I: 81/263 -> 0.2553 to 0.3662.
    low, high = wilson_interval(81, 263)
    assert low == pytest.approx(0.2553, abs=1e-4) and high == pytest.approx(0.3662, abs=1e-4)
    # 15/148 -> 0.0624 to 0.1605 (same table).
    low, high = wilson_interval(15, 148)
    assert low == pytest.approx(0.0624, abs=1e-4) and high == pytest.approx(0.1605, abs=1e-4)


def test_wilson_stays_inside_zero_and_one_at_the_edges():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0.25 < high < 0.35
    low, high = wilson_interval(10, 10)
    assert high == pytest.approx(1.0) and high <= 1.0 and 0.65 < low < 0.75
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_mcnemar_exact_is_the_two_sided_binomial_test():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    # b=1, c=9: 2 * P(X <= 1 | n=10, p=.5) = 2 * 11/1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)


def _pairs(both: int, only_a: int, only_b: int, neither: int) -> list[tuple[bool, bool]]:
    return [(True, True)] * both + [(True, False)] * only_a + [(False, True)] * only_b + [(False, False)] * neither


def test_paired_comparison_without_correlation_is_the_square_and_add_of_two_wilson_intervals():
    # With phi = 0 (a*d == b*c), Newcombe's method 10 reduces to his independent-samples
    # interval: delta -/+ sqrt((p1 - l1)^2 + (u2 - p2)^2) / sqrt((p2 - l2)^2 + (u1 - p1)^2).
    result = paired_comparison(_pairs(4, 4, 2, 2))  # 4*2 == 4*2
    n = 12
    p1, p2 = 8 / n, 6 / n
    l1, u1 = wilson_interval(8, n)
    l2, u2 = wilson_interval(6, n)
    assert result.difference == pytest.approx(p1 - p2)
    assert result.low == pytest.approx(p1 - p2 - ((p1 - l1) ** 2 + (u2 - p2) ** 2) ** 0.5)
    assert result.high == pytest.approx(p1 - p2 + ((p2 - l2) ** 2 + (u1 - p1) ** 2) ** 0.5)


def test_positive_correlation_narrows_the_paired_interval():
    # Same margins, but agreement between the systems (phi > 0) makes the difference surer.
    independent = paired_comparison(_pairs(12, 12, 4, 4))      # 12*4 == 12*4: phi = 0
    correlated = paired_comparison(_pairs(16, 8, 0, 8))        # same margins (24/32, 16/32)
    assert correlated.difference == pytest.approx(independent.difference)
    assert correlated.high - correlated.low < independent.high - independent.low


def test_swapping_the_systems_mirrors_the_interval():
    ab = paired_comparison(_pairs(12, 9, 2, 21))
    ba = paired_comparison(_pairs(12, 2, 9, 21))
    assert ba.difference == pytest.approx(-ab.difference)
    assert ba.low == pytest.approx(-ab.high) and ba.high == pytest.approx(-ab.low)
    assert ab.p_value == pytest.approx(mcnemar_exact(9, 2)) == pytest.approx(ba.p_value)
    assert ab.low < ab.difference < ab.high


def test_paired_comparison_of_identical_systems_is_zero_and_not_significant():
    pairs = [(True, True)] * 30 + [(False, False)] * 20
    result = paired_comparison(pairs)
    assert result.difference == 0 and result.p_value == 1.0 and not result.significant
    assert result.low <= 0 <= result.high


def test_a_clear_difference_is_significant():
    pairs = [(True, False)] * 20 + [(True, True)] * 20 + [(False, False)] * 10
    result = paired_comparison(pairs)
    assert result.significant and result.low > 0


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 4, 1) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 4) == 1.0
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - (7 * 6) / (10 * 9))
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_mean_interval_contains_the_mean():
    low, high = mean_interval([0.0, 0.25, 0.5, 1.0, 1.0])
    assert low < 0.55 < high
    assert mean_interval([]) == (0.0, 1.0)

"""The shared measurement helpers: one definition of a percentile for every benchmark, and the
distribution distances convert's verification reports."""

from __future__ import annotations

import numpy as np
import pytest

from vibe_edge.bench.metrics import kl_divergence, log_softmax, next_token_nll, p95, percentile


def test_percentiles_are_measured_values_by_nearest_rank():
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 0.95) == p95(values) == 5.0
    assert percentile(list(range(1, 101)), 0.95) == 95
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError):
        p95([])


def test_kl_is_zero_for_equal_distributions_and_positive_otherwise():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])
    p = log_softmax(logits)
    assert np.allclose(np.exp(p).sum(-1), 1.0)
    assert np.allclose(kl_divergence(p, p), 0.0, atol=1e-6)
    q = log_softmax(logits[::-1])
    assert (kl_divergence(p, q) > 0.1).all()
    # positions 0 and 1 predict tokens 2 and 1
    assert np.allclose(next_token_nll(p, [0, 2, 1]), [-p[0, 2], -p[1, 1]])

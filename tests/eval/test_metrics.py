"""Hand-computed HR/NDCG/MRR cases and metric properties."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from dotrec.eval.metrics import hit_rate, mean_and_stderr, ndcg, reciprocal_rank


def test_hand_computed_values() -> None:
    ranks = np.array([0, 1, 9, 10, 50])
    np.testing.assert_array_equal(hit_rate(ranks, 10), [1, 1, 1, 0, 0])
    np.testing.assert_allclose(
        ndcg(ranks, 10), [1.0, 1 / math.log2(3), 1 / math.log2(11), 0.0, 0.0]
    )
    np.testing.assert_allclose(reciprocal_rank(ranks), [1, 1 / 2, 1 / 10, 1 / 11, 1 / 51])


def test_k_boundary() -> None:
    # rank k-1 is inside the top k, rank k is outside (0-based ranks, as NCF's evaluate.py).
    assert hit_rate([4], 5)[0] == 1.0 and hit_rate([5], 5)[0] == 0.0
    assert ndcg([4], 5)[0] == 1 / math.log2(6) and ndcg([5], 5)[0] == 0.0


def test_mean_and_stderr() -> None:
    m, se = mean_and_stderr([1.0, 0.0, 1.0, 0.0])
    assert m == 0.5
    assert math.isclose(se, np.std([1, 0, 1, 0], ddof=1) / 2)


@given(st.lists(st.integers(0, 200), min_size=1, max_size=50), st.integers(1, 100))
def test_metric_properties(ranks: list[int], k: int) -> None:
    r = np.array(ranks)
    h, n = hit_rate(r, k), ndcg(r, k)
    assert np.all((0 <= n) & (n <= 1)) and np.all((0 <= h) & (h <= 1))
    assert np.all(n <= h)
    assert np.all(hit_rate(r, k + 1) >= h)  # HR never decreases as k grows
    assert ndcg(np.zeros(3, int), k).tolist() == [1.0, 1.0, 1.0]  # perfect ranking

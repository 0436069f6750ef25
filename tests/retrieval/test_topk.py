"""Exact top-k: equals a brute-force argsort (ties to the lower index) on every path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dotrec.retrieval.topk import topk_dot, topk_rows


def brute_force(scores: np.ndarray, k: int, exclude: list[np.ndarray]) -> np.ndarray:
    """Indices by descending score then ascending index, excluded items removed, padded -1."""
    out = np.full((len(scores), k), -1)
    for r, row in enumerate(scores):
        order = np.lexsort((np.arange(len(row)), -row))
        order = order[~np.isin(order, exclude[r])][:k]
        out[r, : len(order)] = order
    return out


@settings(max_examples=60, deadline=None)
@given(
    n_items=st.integers(1, 300),
    dim=st.integers(1, 6),
    n_queries=st.integers(1, 7),
    k=st.integers(1, 40),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**31),
)
def test_exact_topk_equals_argsort(
    n_items: int, dim: int, n_queries: int, k: int, threads: int, seed: int
) -> None:
    # Small integers: every summation order gives the same float, and ties are frequent.
    r = np.random.default_rng(seed)
    items = r.integers(-2, 3, (n_items, dim)).astype(np.float32)
    bias = r.integers(-2, 3, n_items).astype(np.float32)
    queries = r.integers(-2, 3, (n_queries, dim)).astype(np.float32)
    exclude = [
        r.choice(n_items, r.integers(0, n_items + 1), replace=False) for _ in range(n_queries)
    ]
    scores = queries @ items.T + bias
    expected = brute_force(scores, k, exclude)
    idx, sc = topk_dot(queries, items, bias, k, exclude=exclude, threads=threads)
    np.testing.assert_array_equal(idx, expected)
    valid = expected >= 0
    np.testing.assert_array_equal(
        sc[valid], np.take_along_axis(scores, np.maximum(expected, 0), 1)[valid]
    )
    assert np.all(np.isneginf(sc[~valid]))
    idx_rows, _ = topk_rows(scores, k, exclude=exclude, threads=threads)
    np.testing.assert_array_equal(idx_rows, expected)


def test_large_catalog_parallel_paths_agree() -> None:
    # Above 4096 items per part the catalog is split over threads; both paths must merge.
    r = np.random.default_rng(1)
    items = r.integers(-3, 4, (20_000, 8)).astype(np.float32)
    bias = np.zeros(20_000, np.float32)
    queries = r.integers(-3, 4, (6, 8)).astype(np.float32)
    expected = brute_force(queries @ items.T, 25, [np.array([], int)] * 6)
    for threads in (1, 2):
        np.testing.assert_array_equal(
            topk_dot(queries, items, bias, 25, threads=threads)[0], expected
        )
        np.testing.assert_array_equal(
            topk_dot(queries[:1], items, bias, 25, threads=threads)[0], expected[:1]
        )


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k(k: object) -> None:
    with pytest.raises(ValueError, match="k must be"):
        topk_dot(np.ones((1, 2)), np.ones((3, 2), np.float32), np.zeros(3, np.float32), k)


def test_dimension_mismatch_and_exclude_rows() -> None:
    items, bias = np.ones((3, 2), np.float32), np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="dimension"):
        topk_dot(np.ones((1, 3)), items, bias, 1)
    with pytest.raises(ValueError, match="exclude has 2 rows"):
        topk_dot(np.ones((1, 2)), items, bias, 1, exclude=[[0], [1]])


def test_exclusion_rows_already_sorted_are_taken_as_they_are() -> None:
    from dotrec.retrieval.topk import exclusion_csr

    sorted_row = np.array([1, 4, 9], dtype=np.int64)
    indptr, indices = exclusion_csr([sorted_row, [7, 3, 3, 0], []], 3)
    assert indptr.tolist() == [0, 3, 6, 6] and indices.tolist() == [1, 4, 9, 0, 3, 7]

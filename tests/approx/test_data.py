"""The synthetic data: noise and RMSE floors, distinct pairs, the split, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from dotrec.approx.data import (
    LABEL_STD,
    PAIRS_PER_USER,
    TARGET_STD,
    embedding_sigma,
    make_dataset,
    pair_dots,
    rmse,
    sample_pairs,
)
from dotrec.errors import ConfigError


def _codes(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    return users.astype(np.int64) * n_items + items


@pytest.mark.parametrize("d", [1, 16, 128])
def test_sigma_gives_the_stated_label_variance(d: int) -> None:
    assert d * embedding_sigma(d) ** 4 == pytest.approx(TARGET_STD**2 - LABEL_STD**2)


@pytest.fixture(scope="module")
def large() -> tuple[np.ndarray, np.ndarray, float]:
    """Labels and dot products of a large draw (train + test + 200k fresh pairs), and sigma."""
    data = make_dataset(32, 1000, seed=3, n_fresh=200_000)
    y = np.concatenate([data.labels(p) for p in ("train", "test", "fresh")])
    dot = np.concatenate([data.dot_predictions(p) for p in ("train", "test", "fresh")])
    emb = np.concatenate([data.user_factors.ravel(), data.fresh_item_factors.ravel()])
    assert emb.std() == pytest.approx(embedding_sigma(32), rel=0.01)
    return y, dot, float(emb.std())


def test_label_noise_and_dot_product_floor(large: tuple[np.ndarray, np.ndarray, float]) -> None:
    y, dot, _ = large
    n = y.size
    noise = y - dot
    # Sampling error of a mean and of an RMSE of n Gaussian values; allow 4 standard errors.
    assert abs(noise.mean()) < 4 * LABEL_STD / np.sqrt(n)
    assert abs(rmse(dot, y) - LABEL_STD) < 4 * LABEL_STD / np.sqrt(2 * n)
    assert abs(np.corrcoef(noise, dot)[0, 1]) < 4 / np.sqrt(n)


def test_zero_predictor_rmse_is_about_1_13(large: tuple[np.ndarray, np.ndarray, float]) -> None:
    y, _, _ = large
    # Standard error of sqrt(mean(y^2)) from the sample's own fourth moment.
    se = np.sqrt(np.var(y**2) / y.size) / (2 * TARGET_STD)
    assert abs(rmse(np.zeros_like(y), y) - TARGET_STD) < 4 * se
    assert 4 * se < 0.01


def test_split_sizes_distinct_pairs_and_no_overlap() -> None:
    n = 500
    data = make_dataset(8, n, seed=1, n_fresh=10)
    train = _codes(data.train_users, data.train_items, n)
    test = _codes(data.test_users, data.test_items, n)
    assert train.size == 0.9 * PAIRS_PER_USER * n and test.size == 0.1 * PAIRS_PER_USER * n
    both = np.concatenate([train, test])
    assert np.unique(both).size == both.size  # distinct, hence no pair in both sets
    assert both.min() >= 0 and both.max() < n * n
    assert data.fresh_user_factors.shape == data.fresh_item_factors.shape == (10, 8)


def test_same_seed_same_data_other_seed_or_repeat_other_data() -> None:
    a = make_dataset(8, 200, seed=5, n_fresh=100)
    b = make_dataset(8, 200, seed=5, n_fresh=100)
    for name in (
        "user_factors",
        "train_users",
        "train_items",
        "train_labels",
        "test_labels",
        "fresh_user_factors",
        "fresh_labels",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for other in (
        make_dataset(8, 200, seed=6, n_fresh=100),
        make_dataset(8, 200, seed=5, repeat=1, n_fresh=100),
    ):
        assert not np.array_equal(a.train_labels, other.train_labels)
        assert not np.array_equal(a.user_factors, other.user_factors)
    # The fresh-set size is its own stream: it does not move the train/test data.
    c = make_dataset(8, 200, seed=5, n_fresh=300)
    np.testing.assert_array_equal(a.train_labels, c.train_labels)


def test_sample_pairs_sparse_is_uniform_and_distinct() -> None:
    n_users, n_items, k = 300, 400, 30_000
    users, items = sample_pairs(n_users, n_items, k, np.random.default_rng(0))
    codes = _codes(users, items, n_items)
    assert codes.size == k and np.unique(codes).size == k
    assert users.dtype == np.int64 and users.max() < n_users and items.max() < n_items
    # Each user's count is hypergeometric, mean k / n_users = 100, variance
    # 100 (1 - 1/300) (1 - 30000/120000) ~ 74.8: the spread over the 300 users must match it (a
    # sampler that clumps or spreads pairs moves it), and items likewise (mean 75, var ~56).
    counts = np.bincount(users, minlength=n_users)
    assert 55 < counts.var() < 100 and counts.min() > 50, counts.var()
    item_counts = np.bincount(items, minlength=n_items)
    assert 40 < item_counts.var() < 75, item_counts.var()
    # Random order, not sorted codes.
    assert not np.all(np.diff(codes) > 0)


def test_sample_pairs_dense_takes_every_pair_once() -> None:
    users, items = sample_pairs(100, 100, 10_000, np.random.default_rng(0))
    np.testing.assert_array_equal(np.sort(_codes(users, items, 100)), np.arange(10_000))


def test_sample_pairs_at_paper_scale_is_vectorized() -> None:
    """128,000 users x 100 pairs: a pair-by-pair loop over 1.6e10 pairs could never finish."""
    n = 128_000
    users, items = sample_pairs(n, n, PAIRS_PER_USER * n, np.random.default_rng(0))
    codes = np.sort(_codes(users, items, n))
    assert codes.size == PAIRS_PER_USER * n
    assert np.all(codes[1:] != codes[:-1]) and codes[0] >= 0 and codes[-1] < n * n


def test_sample_pairs_and_dataset_reject_impossible_sizes() -> None:
    with pytest.raises(ConfigError, match="distinct pairs"):
        sample_pairs(10, 10, 101, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="n_users must be >= 100"):
        make_dataset(8, 99, seed=0)
    with pytest.raises(ConfigError):
        embedding_sigma(0)


def test_pair_dots_matches_gathered_rows() -> None:
    r = np.random.default_rng(0)
    a, b = r.normal(size=(50, 6)), r.normal(size=(40, 6))
    u, i = r.integers(0, 50, 1000), r.integers(0, 40, 1000)
    np.testing.assert_allclose(pair_dots(a, b, u, i, chunk=64), np.sum(a[u] * b[i], axis=1))
    np.testing.assert_allclose(pair_dots(a[:40], b, chunk=7), np.sum(a[:40] * b, axis=1))

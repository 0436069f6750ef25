"""The one negative sampler: exact complement mapping, uniformity, and its users' guarantees."""

from __future__ import annotations

import numpy as np

from dotrec.data.interactions import Interactions
from dotrec.data.negatives import complement_items, eval_negatives, training_negatives
from dotrec.random import rng


def _data() -> Interactions:
    r = np.random.default_rng(3)
    users = np.repeat(np.arange(30), r.integers(0, 12, 30))
    items = r.integers(0, 15, len(users))
    return Interactions.from_indices(users, items, n_users=30, n_items=15, warn_duplicates=False)


def test_complement_items_equals_brute_force() -> None:
    d = _data()
    csr = d.csr
    users, ranks, expected = [], [], []
    for u in range(d.n_users):
        free = sorted(set(range(d.n_items)) - set(csr.indices[csr.indptr[u] : csr.indptr[u + 1]]))
        for j, item in enumerate(free):
            users.append(u)
            ranks.append(j)
            expected.append(item)
    np.testing.assert_array_equal(complement_items(csr, np.array(users), np.array(ranks)), expected)


def test_training_negatives_are_uniform_over_the_complement() -> None:
    d = _data()
    neg = training_negatives(d, 400, rng(0, "t")).reshape(len(d), 400)
    csr = d.csr
    u = int(np.argmax(d.user_counts))  # the user with the most positives
    seen = set(csr.indices[csr.indptr[u] : csr.indptr[u + 1]].tolist())
    drawn = neg[d.user_index == u].ravel()
    assert not seen & set(drawn.tolist())
    counts = np.bincount(drawn, minlength=d.n_items)[sorted(set(range(d.n_items)) - seen)]
    expected = len(drawn) / len(counts)
    # chi-square with len(counts) - 1 degrees of freedom; 0.1% critical value below 35 here
    assert ((counts - expected) ** 2 / expected).sum() < 35, counts


def test_eval_negatives_are_distinct_and_unseen() -> None:
    d = _data()
    users = np.flatnonzero(d.user_counts <= 8)
    neg = eval_negatives(d, users, 5, seed=1)
    csr = d.csr
    for row, u in zip(neg, users):
        assert len(set(row.tolist())) == 5
        assert not set(row.tolist()) & set(csr.indices[csr.indptr[u] : csr.indptr[u + 1]].tolist())
    np.testing.assert_array_equal(neg, eval_negatives(d, users, 5, seed=1))

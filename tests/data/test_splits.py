"""Leave-one-out, negative sampling and the holdout: properties and hand cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dotrec.data.interactions import Interactions
from dotrec.data.splits import leave_one_out, sample_negatives
from dotrec.errors import ConfigError


@st.composite
def interactions(draw: st.DrawFn, with_time: bool | None = None) -> Interactions:
    n_users = draw(st.integers(1, 12))
    n_items = draw(st.integers(8, 30))
    pairs = draw(
        st.lists(
            st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)),
            min_size=1,
            max_size=120,
            unique=True,
        )
    )
    u, i = map(np.array, zip(*pairs))
    timed = draw(st.booleans()) if with_time is None else with_time
    t = (
        np.array(draw(st.lists(st.integers(0, 5), min_size=len(u), max_size=len(u))))
        if timed
        else None
    )
    return Interactions.from_indices(u, i, n_users=n_users, n_items=n_items, timestamps=t)


def pairs_of(d: Interactions) -> set[tuple[int, int]]:
    return set(zip(d.user_index.tolist(), d.item_index.tolist()))


@settings(max_examples=150, deadline=None)
@given(interactions(), st.integers(0, 2**31), st.integers(0, 5))
def test_leave_one_out_properties(d: Interactions, seed: int, n_neg: int) -> None:
    free = d.n_items - d.user_counts.max()
    if free < n_neg:
        with pytest.raises(ConfigError):
            leave_one_out(d, seed=seed, n_negatives=n_neg)
        return
    s = leave_one_out(d, seed=seed, n_negatives=n_neg)
    test = set(zip(s.test_users.tolist(), s.test_items.tolist()))
    train = pairs_of(s.train)
    assert not train & test  # disjoint
    assert train | test == pairs_of(d)  # union is the input
    assert len(s.test_users) == len(set(s.test_users.tolist()))  # one test item per user
    assert set(s.test_users.tolist()) == set(np.flatnonzero(d.user_counts >= 2).tolist())
    all_pos = pairs_of(d)
    for row, u in enumerate(s.test_users.tolist()):
        negs = s.negatives[row].tolist()
        assert len(set(negs)) == n_neg  # without replacement
        assert all((u, j) not in all_pos for j in negs)  # never a positive (train or test)
        assert all(0 <= j < d.n_items for j in negs)
    if d.timestamps is not None:  # the held-out item is a latest one
        for u, i in test:
            rows = d.user_index == u
            t_test = d.timestamps[rows & (d.item_index == i)][0]
            assert t_test == d.timestamps[rows].max()
    again = leave_one_out(d, seed=seed, n_negatives=n_neg)
    np.testing.assert_array_equal(again.test_items, s.test_items)
    np.testing.assert_array_equal(again.negatives, s.negatives)


def test_tie_rule_last_row_in_input_order_wins() -> None:
    d = Interactions.from_indices(
        np.array([0, 0, 0, 1, 1]),
        np.array([3, 1, 2, 0, 4]),
        n_users=2,
        n_items=6,
        timestamps=np.array([5, 7, 7, 1, 1]),
    )
    s = leave_one_out(d, n_negatives=0)
    assert s.test_items.tolist() == [2, 4]


def test_single_interaction_users_stay_in_training() -> None:
    d = Interactions.from_indices(
        np.array([0, 1, 1]),
        np.array([0, 0, 1]),
        n_users=2,
        n_items=5,
        timestamps=np.array([1, 1, 2]),
    )
    s = leave_one_out(d, n_negatives=2)
    assert s.test_users.tolist() == [1] and s.train.n_interactions == 2


def test_negatives_uniform_over_the_complement() -> None:
    d = Interactions.from_indices(np.zeros(3, int), np.array([1, 4, 6]), n_users=1, n_items=8)
    counts = np.zeros(8)
    for seed in range(400):
        counts += np.bincount(sample_negatives(d, np.array([0]), 2, seed=seed)[0], minlength=8)
    assert counts[[1, 4, 6]].sum() == 0
    free = counts[[0, 2, 3, 5, 7]]
    # 800 draws over 5 free items: uniform means 160 each. Chi-square with 4 degrees of freedom
    # (pairs within a draw are distinct, which only narrows it); 0.1% critical value 18.5. A
    # sampler that favoured the first free items (e.g. ranks not shifted past positives) fails.
    assert ((free - 160) ** 2 / 160).sum() < 18.5, free


def test_holdout_reads_training_data_only() -> None:
    d = Interactions.from_indices(
        np.repeat(np.arange(4), 5),
        np.tile(np.arange(5), 4),
        n_users=4,
        n_items=30,
        timestamps=np.tile(np.arange(5), 4),
    )
    s = leave_one_out(d, n_negatives=3)
    h = s.holdout(seed=1, n_negatives=3)
    assert pairs_of(h.train) | set(zip(h.test_users.tolist(), h.test_items.tolist())) == pairs_of(
        s.train
    )
    assert h.test_items.tolist() == [3, 3, 3, 3]  # the latest training item of each user


def test_file_split_holdout_takes_a_seeded_share_of_each_users_training_items() -> None:
    from dotrec.data.splits import FileSplit

    r = np.random.default_rng(0)
    users = np.repeat(np.arange(50), 10)
    items = np.concatenate([r.choice(40, 10, replace=False) for _ in range(50)])
    train = Interactions.from_indices(users, items, n_users=51, n_items=40)  # user 50: none
    test = Interactions.from_indices([0, 1], [0, 0], n_users=51, n_items=40, warn_duplicates=False)
    test = test.select(~np.isin(test.item_index, train.items_of(0)))  # keep it disjoint
    split = FileSplit(train, test, name="t")
    h = split.holdout(seed=3)
    assert (h.n_users, h.n_items) == (51, 40)
    assert np.all(h.test.user_counts[:50] == 2) and np.all(h.train.user_counts[:50] == 8)
    # disjoint, and together the original training data; the test file is not in it
    pairs = lambda x: set(zip(x.user_index.tolist(), x.item_index.tolist()))  # noqa: E731
    assert pairs(h.train) | pairs(h.test) == pairs(train) and not pairs(h.train) & pairs(h.test)
    same = split.holdout(seed=3)
    assert pairs(same.test) == pairs(h.test) and pairs(split.holdout(seed=4).test) != pairs(h.test)


def test_file_split_holdout_users_scores_a_seeded_sample_and_keeps_training_fixed() -> None:
    from dotrec.data.splits import FileSplit
    from dotrec.eval.holdout import tuning_holdout

    r = np.random.default_rng(1)
    users = np.repeat(np.arange(40), 6)
    items = np.concatenate([r.choice(30, 6, replace=False) for _ in range(40)])
    train = Interactions.from_indices(users, items, n_users=41, n_items=30)
    test = Interactions.from_indices([40], [0], n_users=41, n_items=30)
    split = FileSplit(train, test, name="t")
    full = split.holdout(seed=5)
    part = split.holdout(seed=5, users=7)
    pairs = lambda x: set(zip(x.user_index.tolist(), x.item_index.tolist()))  # noqa: E731
    # the training part is the same with or without the sample
    assert pairs(part.train) == pairs(full.train)
    # exactly 7 users scored, each with all its held-out items, a subset of the full holdout
    assert len(part.test_users) == 7 and pairs(part.test) <= pairs(full.test)
    for u in part.test_users:
        assert part.test.user_counts[u] == full.test.user_counts[u] == 1  # round(0.2 * 6)
    # seeded: same seed, same users; another seed, another sample
    assert part.test_users.tolist() == split.holdout(seed=5, users=7).test_users.tolist()
    assert part.test_users.tolist() != split.holdout(seed=6, users=7).test_users.tolist()
    # more users asked than there are: every user, as without a sample
    assert pairs(split.holdout(seed=5, users=1000).test) == pairs(full.test)
    with pytest.raises(ConfigError, match="holdout users must be >= 1"):
        split.holdout(seed=5, users=0)
    assert pairs(tuning_holdout(split, 5, 99, 7).test) == pairs(part.test)
    loo = leave_one_out(train, seed=0, n_negatives=3)
    with pytest.raises(ConfigError, match="splits given by files"):
        tuning_holdout(loo, 0, 3, 7)

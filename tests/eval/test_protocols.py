"""Sampled and full-catalog protocols on hand-made score tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dotrec.data.interactions import Interactions
from dotrec.data.splits import Split
from dotrec.eval.protocols import evaluate, evaluate_full, evaluate_sampled, paired_difference


class TableModel:
    """A model whose scores are a fixed users x items table."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.asarray(table, dtype=np.float64)

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.table[users, items]

    def score_all(self, users: np.ndarray) -> np.ndarray:
        return self.table[users]


def make_split(
    train_pairs: list[tuple[int, int]],
    test: list[tuple[int, int]],
    negatives: list[list[int]],
    n_users: int,
    n_items: int,
) -> Split:
    u, i = zip(*train_pairs)
    tr = Interactions.from_indices(np.array(u), np.array(i), n_users=n_users, n_items=n_items)
    tu, ti = zip(*test)
    return Split(tr, np.array(tu), np.array(ti), np.array(negatives), name="hand")


def test_sampled_rank_and_ties() -> None:
    # user 0: test item 1 scores 0.5; negatives 2 (0.9, beats), 3 (0.5, ties), 4 (0.1).
    # A tie ranks above the held-out item: rank = 2.
    table = np.array([[0.0, 0.5, 0.9, 0.5, 0.1]])
    split = make_split([(0, 0)], [(0, 1)], [[2, 3, 4]], 1, 5)
    r = evaluate_sampled(TableModel(table), split, k=2)
    assert r.ranks.tolist() == [2]
    assert r.ties == 1
    assert r.hr.tolist() == [0.0]
    r3 = evaluate_sampled(TableModel(table), split, k=3)
    assert r3.hr.tolist() == [1.0] and math.isclose(r3.ndcg[0], 1 / math.log2(4))


def test_constant_scorer_gets_zero() -> None:
    split = make_split([(0, 0), (1, 1)], [(0, 1), (1, 2)], [[2, 3], [0, 3]], 2, 4)
    r = evaluate_sampled(TableModel(np.ones((2, 4))), split, k=10)
    assert r.ranks.tolist() == [2, 2]
    assert r.ties == 2
    assert evaluate_sampled(TableModel(np.ones((2, 4))), split, k=2).hr.sum() == 0.0


def test_test_item_among_its_own_negatives_is_left_out() -> None:
    # The NCF ml-1m quirk: the held-out item 1 appears in its own negatives list. It must not
    # count as a negative that ties with (and so beats) the held-out item.
    table = np.array([[0.0, 0.5, 0.1, 0.2]])
    split = make_split([(0, 0)], [(0, 1)], [[2, 1, 3]], 1, 4)
    r = evaluate_sampled(TableModel(table), split, k=1)
    assert r.ranks.tolist() == [0]
    assert r.hr.tolist() == [1.0]
    assert r.self_negatives == 1 and r.ties == 0


def test_nan_scores_never_help() -> None:
    table = np.array([[0.0, np.nan, 0.1, 0.2]])
    split = make_split([(0, 0)], [(0, 1)], [[2, 3]], 1, 4)
    assert evaluate_sampled(TableModel(table), split, k=10).ranks.tolist() == [2]


def test_full_catalog_excludes_training_items() -> None:
    # items 0..5; user 0 trained on items 0 and 5 (scores high) -> they are not competitors.
    table = np.array([[9.0, 0.3, 0.8, 0.5, 0.5, 7.0]])
    split = make_split([(0, 0), (0, 5)], [(0, 3)], [[1, 2, 4]], 1, 6)
    r = evaluate_full(TableModel(table), split, k=10)
    # competitors: 1 (0.3), 2 (0.8 beats), 4 (0.5 ties -> beats) => rank 2
    assert r.ranks.tolist() == [2]
    s = r.summary()
    assert math.isclose(s["mrr"], 1 / 3) and s["hr@10"] == 1.0
    assert math.isclose(s["ndcg@10"], 1 / math.log2(4))
    assert s["ties"] == 1  # item 4 tied the held-out item


def test_full_catalog_counts_ties_only_among_competitors() -> None:
    # Two users over items 0..4. User 0 holds out item 1 (0.5); item 3 ties it but is a training
    # item, so it is no competitor: no tie, rank 1 (item 2 beats it). User 1 holds out item 2
    # (0.2); items 0 and 4 tie it: a tie, rank 2 + 1 (item 3 beats it) = 3.
    table = np.array([[0.1, 0.5, 0.9, 0.5, 0.0], [0.2, 0.0, 0.2, 0.7, 0.2]])
    split = make_split([(0, 3), (1, 1)], [(0, 1), (1, 2)], [[0, 4], [0, 4]], 2, 5)
    r = evaluate_full(TableModel(table), split, k=10)
    assert r.ranks.tolist() == [1, 3] and r.ties == 1
    # A constant scorer ties everywhere and never hits (pessimistic ties).
    const = evaluate_full(TableModel(np.zeros((2, 5))), split, k=3)
    assert const.ties == 2 and const.hr.tolist() == [0.0, 0.0]


def test_evaluate_both_and_keys() -> None:
    table = np.array([[0.0, 0.9, 0.1, 0.2]])
    split = make_split([(0, 0)], [(0, 1)], [[2, 3]], 1, 4)
    res = evaluate(TableModel(table), split, protocol="both", k=5)
    assert set(res) == {"sampled", "full"}
    assert {"hr@5", "ndcg@5", "users", "ties"} <= set(res["sampled"].summary())
    assert {"hr@5", "ndcg@5", "mrr", "users", "ties"} <= set(res["full"].summary())
    with pytest.raises(ValueError):
        evaluate(TableModel(table), split, protocol="bogus")


def test_paired_difference() -> None:
    split = make_split([(0, 0), (1, 0)], [(0, 1), (1, 1)], [[2, 3], [2, 3]], 2, 4)
    good = evaluate_sampled(TableModel(np.array([[0, 1, 0, 0], [0, 1, 0, 0]])), split, k=1)
    bad = evaluate_sampled(TableModel(np.array([[0, 0, 1, 1], [0, 0, 1, 1]])), split, k=1)
    d = paired_difference(good, bad, "hr")
    assert d["mean"] == 1.0 and d["n"] == 2

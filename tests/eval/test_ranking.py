"""The LightGCN full-ranking protocol: hand-computed cases, a brute-force twin, Gowalla."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dotrec.data.interactions import Interactions
from dotrec.data.splits import FileSplit
from dotrec.eval.ranking import evaluate_ranking


class Fixed:
    """A model whose scores are a given (n_users, n_items) matrix."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = np.asarray(scores, dtype=np.float64)

    def score_all(self, users: np.ndarray) -> np.ndarray:
        return self.scores[users]


def split_of(train: dict[int, list[int]], test: dict[int, list[int]], n_items: int) -> FileSplit:
    n_users = max([*train, *test]) + 1

    def build(d: dict[int, list[int]]) -> Interactions:
        u = [user for user, items in d.items() for _ in items]
        i = [item for items in d.values() for item in items]
        return Interactions.from_indices(u, i, n_users=n_users, n_items=n_items)

    return FileSplit(build(train), build(test), name="hand")


def test_hand_computed_user() -> None:
    # 8 items; item 0 (the best score) is a training item and takes no position.
    # Ranking of the rest: 5 (0.9), 2 (0.8), 6 (0.7), 3 (0.6), 7 (0.5), 1 (0.4), 4 (0.3).
    # Test items {2, 3, 4}; K = 3: positions 1 (item 2) and 3 (item 3) -> only item 2 is in
    # the top 3. Recall 1/3, precision 1/3, DCG 1/log2(3), IDCG 1 + 1/log2(3) + 1/2.
    s = split_of({0: [0]}, {0: [2, 3, 4]}, 8)
    scores = [[1.0, 0.4, 0.8, 0.6, 0.3, 0.9, 0.7, 0.5]]
    r = evaluate_ranking(Fixed(scores), s, k=3)
    idcg = 1 + 1 / math.log2(3) + 1 / 2
    assert r.recall[0] == pytest.approx(1 / 3) and r.precision[0] == pytest.approx(1 / 3)
    assert r.ndcg[0] == pytest.approx((1 / math.log2(3)) / idcg)
    # K = 5: items 2 (pos 1) and 3 (pos 3) hit; IDCG over min(5, 3) = 3 positions.
    r = evaluate_ranking(Fixed(scores), s, k=5)
    assert r.recall[0] == pytest.approx(2 / 3) and r.precision[0] == pytest.approx(2 / 5)
    assert r.ndcg[0] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / idcg)


def test_ties_go_against_the_test_item() -> None:
    # Items 1 and 2 tie at 0.5; item 2 is the test item, so it ranks second, not first.
    s = split_of({0: [0]}, {0: [2]}, 4)
    r = evaluate_ranking(Fixed([[9.0, 0.5, 0.5, 0.1]]), s, k=1)
    assert r.recall[0] == 0.0 and r.ties == 0  # the tie sits outside the top 1 for the item
    r = evaluate_ranking(Fixed([[9.0, 0.5, 0.5, 0.1]]), s, k=2)
    assert r.recall[0] == 1.0 and r.ndcg[0] == pytest.approx(1 / math.log2(3)) and r.ties == 1
    # Two tied test items: both hit at K = 2, whatever their order.
    s2 = split_of({0: [0]}, {0: [1, 2]}, 4)
    r = evaluate_ranking(Fixed([[9.0, 0.5, 0.5, 0.1]]), s2, k=2)
    assert r.recall[0] == 1.0 and r.ndcg[0] == pytest.approx(1.0)


def _brute_force(scores: np.ndarray, split: FileSplit, k: int) -> tuple[np.ndarray, ...]:
    """A second implementation: sort every eligible item, test items last among equals."""
    train, test = split.train.csr, split.test.csr
    rec, nd, pr = [], [], []
    for u in split.test_users:
        tr = set(train.indices[train.indptr[u] : train.indptr[u + 1]].tolist())
        te = set(test.indices[test.indptr[u] : test.indptr[u + 1]].tolist())
        items = [i for i in range(split.n_items) if i not in tr]
        ranked = sorted(items, key=lambda i: (-scores[u, i], i in te, i))
        top = ranked[:k]
        hits = [p for p, i in enumerate(top) if i in te]
        dcg = sum(1 / math.log2(p + 2) for p in hits)
        idcg = sum(1 / math.log2(p + 2) for p in range(min(k, len(te))))
        rec.append(len(hits) / len(te))
        pr.append(len(hits) / k)
        nd.append(dcg / idcg)
    return np.array(rec), np.array(nd), np.array(pr)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_agrees_with_a_brute_force_computation(k: int) -> None:
    r = np.random.default_rng(7)
    n_users, n_items = 40, 60
    train = {
        u: sorted(r.choice(n_items, r.integers(0, 15), replace=False).tolist())
        for u in range(n_users)
    }
    test = {}
    for u in range(n_users):
        free = [i for i in range(n_items) if i not in train[u]]
        test[u] = sorted(r.choice(free, r.integers(1, 8), replace=False).tolist())
    split = split_of(train, test, n_items)
    scores = r.integers(0, 6, size=(n_users, n_items)).astype(np.float64)  # many ties
    got = evaluate_ranking(Fixed(scores), split, k=k, batch_size=7)
    rec, nd, pr = _brute_force(scores, split, k)
    np.testing.assert_allclose(got.recall, rec)
    np.testing.assert_allclose(got.ndcg, nd)
    np.testing.assert_allclose(got.precision, pr)
    assert got.ties > 0 or k == 1  # at K = 1 a tied hit is impossible: the tie ranks first


@pytest.mark.realdata
def test_popularity_on_gowalla_matches_the_independent_figures(data_dir: Path) -> None:
    from dotrec.data.registry import load_file_split
    from dotrec.models import Popularity

    split = load_file_split("gowalla", data_dir)
    assert isinstance(split, FileSplit)
    assert (split.n_users, split.n_items, len(split.train), len(split.test)) == (
        29858,
        40981,
        810128,
        217242,
    )
    s = evaluate_ranking(Popularity().fit(split.train), split, k=20).summary()
    # PROVENANCE.md of the data: an evaluator written apart from dotrec gives these.
    assert s["recall@20"] == pytest.approx(0.0416, abs=1e-4)
    assert s["ndcg@20"] == pytest.approx(0.0317, abs=1e-4)
    assert s["precision@20"] == pytest.approx(0.0139, abs=1e-4)
    assert s["users"] == 29858

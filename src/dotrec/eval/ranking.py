"""Full ranking with many test items per user: the protocol of LightGCN's reference code.

For every user with at least one test item (:attr:`FileSplit.test_users`, all of them averaged):

* every item is ranked by the model's score, except the user's **training items**, which are
  never ranked (they cannot be hits and take no position);
* ``hits`` = the user's test items among the top ``K``;
* ``Recall@K = hits / |test items|``, ``Precision@K = hits / K``;
* ``NDCG@K = DCG / IDCG`` with binary gains, ``DCG = sum over hits of 1 / log2(position + 2)``
  (positions from 0) and ``IDCG`` the DCG of ``min(K, |test items|)`` hits at the top.

Ties are counted pessimistically, as in dotrec's other protocols: a test item ranks below every
non-test item with an equal score (and equal test items keep the index order among themselves,
which changes no metric). The reference code breaks ties by ``torch.topk``'s order instead;
with continuous scores there are none. ``ties`` counts users who had a non-test item tied with
one of their test items inside the top ``K``.

References: X. He et al., "LightGCN", SIGIR 2020, and its reference code (``Procedure.Test``,
``utils.RecallPrecision_ATk``, ``utils.NDCGatK_r``), which follows NGCF's evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dotrec.data.splits import FileSplit
from dotrec.validate import check_k

#: Protocol identifier recorded in results (bump when the semantics change).
PROTOCOL = "lightgcn-full-ranking-v1"


@dataclass(frozen=True)
class RankingResult:
    """Per-user metrics of :func:`evaluate_ranking`, row-aligned with ``users``."""

    k: int
    users: np.ndarray
    recall: np.ndarray
    ndcg: np.ndarray
    precision: np.ndarray
    n_test: np.ndarray
    ties: int = 0

    def summary(self) -> dict[str, Any]:
        """Means over users, JSON-safe."""
        k = self.k
        return {
            "protocol_version": PROTOCOL,
            f"recall@{k}": float(self.recall.mean()),
            f"ndcg@{k}": float(self.ndcg.mean()),
            f"precision@{k}": float(self.precision.mean()),
            "users": len(self.users),
            "ties": self.ties,
        }


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(n, dtype=np.float64) + 2.0)


def rank_user(
    scores: np.ndarray, train_items: np.ndarray, test_items: np.ndarray, k: int
) -> tuple[int, float, bool]:
    """(hits, DCG, tie) of one user: ``scores`` over the catalog (float64, not modified)."""
    s_test = scores[test_items]
    eligible = np.ones(len(scores), dtype=bool)
    eligible[train_items] = False
    competitors = scores[eligible]
    # Only a test item scoring at least the K-th best eligible score can reach the top K.
    m = len(competitors)
    kth = np.partition(competitors, m - k)[m - k] if m >= k else -np.inf
    cand = np.flatnonzero(s_test >= kth)
    if not len(cand):
        return 0, 0.0, False
    order = np.argsort(-s_test, kind="stable")
    dcg, hits, tie = 0.0, 0, False
    rank_in_test = np.empty(len(test_items), dtype=np.int64)
    rank_in_test[order] = np.arange(len(test_items))
    for t in cand:
        s = s_test[t]
        # non-test eligible items at or above it (ties count against the test item) ...
        above = int((competitors >= s).sum()) - int((s_test >= s).sum())
        # ... plus the test items ranked before it (higher, or equal with a lower index)
        position = above + int(rank_in_test[t])
        if position < k:
            hits += 1
            dcg += 1.0 / np.log2(position + 2.0)
            if not tie and int((competitors == s).sum()) > int((s_test == s).sum()):
                tie = True
    return hits, dcg, tie


def evaluate_ranking(
    model: Any, split: FileSplit, *, k: int = 20, batch_size: int = 1024
) -> RankingResult:
    """The LightGCN full-ranking protocol (module doc) of ``model`` on ``split``'s test set.

    ``model`` needs ``score_all(user_indices)``; users are scored ``batch_size`` at a time.
    """
    k = check_k(k)
    users = split.test_users
    train_csr, test_csr = split.train.csr, split.test.csr
    n = len(users)
    recall, ndcg, precision = np.empty(n), np.empty(n), np.empty(n)
    n_test = np.diff(test_csr.indptr)[users]
    ties = 0
    idcg_table = np.cumsum(_discounts(k))
    for s in range(0, n, max(1, batch_size)):
        block = users[s : s + batch_size]
        scores = np.asarray(model.score_all(block), dtype=np.float64)
        for r, u in enumerate(block):
            test_items = test_csr.indices[test_csr.indptr[u] : test_csr.indptr[u + 1]]
            train_items = train_csr.indices[train_csr.indptr[u] : train_csr.indptr[u + 1]]
            hits, dcg, tie = rank_user(scores[r], train_items, test_items, k)
            j = s + r
            recall[j] = hits / len(test_items)
            precision[j] = hits / k
            ndcg[j] = dcg / idcg_table[min(k, len(test_items)) - 1]
            ties += tie
    return RankingResult(k, users.copy(), recall, ndcg, precision, n_test, ties)

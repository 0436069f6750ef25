"""Evaluation protocols: sampled leave-one-out (NCF) and full-catalog ranking.

Sampled (NCF, He et al. 2017)
    The held-out item is ranked among itself and the user's sampled negatives. Its 0-based rank
    is the number of negatives whose score is greater than *or equal to* its score: a tied
    negative ranks above the held-out item, so a constant scorer gets HR = 0. A NaN score never
    helps the held-out item. ``ties`` counts the users for whom at least one negative tied.
    Self-negative rule: the NCF ml-1m negatives file lists, for 156 users, the held-out item
    among its own negatives. Such an entry is not a negative; it is left out of the comparison
    (the item is ranked among the remaining 98). ``self_negatives`` reports how many entries
    were left out.

Full catalog
    The held-out item is ranked among all items the user has no training interaction with
    (the held-out item itself excluded from its competitors), with the same tie rule, and
    ``ties`` counts the users for whom at least one competitor tied (a popularity model's
    items of equal counts, a factor model's all-zero rows). HR@K (equal to Recall@K with one
    relevant item), NDCG@K and MRR.

Both keep per-user arrays so that means carry standard errors and two models can be compared
pairwise on the same users. Protocol versions are stored with results (``PROTOCOL_VERSION``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dotrec.data.splits import Split
from dotrec.eval.metrics import hit_rate, mean_and_stderr, ndcg, reciprocal_rank

PROTOCOL_VERSION = 1


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Per-user ranks and metrics of one protocol run."""

    protocol: str
    k: int
    users: np.ndarray
    ranks: np.ndarray
    ties: int = 0
    self_negatives: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hr(self) -> np.ndarray:
        return hit_rate(self.ranks, self.k)

    @property
    def ndcg(self) -> np.ndarray:
        return ndcg(self.ranks, self.k)

    @property
    def rr(self) -> np.ndarray:
        return reciprocal_rank(self.ranks)

    def summary(self) -> dict[str, Any]:
        """Means (and standard errors) as a JSON-safe dict with ``hr@K``-style keys."""
        k = self.k
        hr, hr_se = mean_and_stderr(self.hr)
        nd, nd_se = mean_and_stderr(self.ndcg)
        out: dict[str, Any] = {f"hr@{k}": hr, f"ndcg@{k}": nd}
        if self.protocol == "full":
            out["mrr"] = mean_and_stderr(self.rr)[0]
        out["users"] = int(len(self.users))
        out["ties"] = int(self.ties)
        if self.protocol == "sampled":
            out["self_negatives"] = int(self.self_negatives)
        out["stderr"] = {f"hr@{k}": hr_se, f"ndcg@{k}": nd_se}
        out["protocol_version"] = PROTOCOL_VERSION
        return out


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def evaluate_sampled(
    model: Any, split: Split, *, k: int = 10, batch_size: int = 1024
) -> EvalResult:
    """NCF sampled leave-one-out evaluation of ``model`` on ``split`` (see module doc)."""
    negs = split.negatives
    if negs.shape[1] == 0:
        raise ValueError(f"split {split.name!r} has no evaluation negatives")
    n, m = negs.shape
    ranks = np.empty(n, dtype=np.int64)
    tie_users = 0
    n_self = 0
    for sl in _batches(n, max(1, batch_size)):
        users = split.test_users[sl]
        pos = split.test_items[sl]
        cand = np.concatenate([pos[:, None], negs[sl]], axis=1)
        if hasattr(model, "score_candidates"):
            scores = np.asarray(model.score_candidates(users, cand), dtype=np.float64)
        else:
            scores = np.asarray(
                model.score(np.repeat(users, m + 1), cand.reshape(-1)), dtype=np.float64
            ).reshape(len(users), m + 1)
        sp, sn = scores[:, :1], scores[:, 1:]
        valid = negs[sl] != pos[:, None]
        n_self += int((~valid).sum())
        beats = ~(sn < sp) & valid  # >= (and NaN) counts against the held-out item
        ties = (sn == sp) & valid
        ranks[sl] = beats.sum(axis=1)
        tie_users += int(ties.any(axis=1).sum())
    return EvalResult(
        "sampled", k, split.test_users.copy(), ranks, ties=tie_users, self_negatives=n_self
    )


def evaluate_full(model: Any, split: Split, *, k: int = 10, batch_size: int = 1024) -> EvalResult:
    """Full-catalog leave-one-out evaluation of ``model`` on ``split`` (see module doc)."""
    csr = split.train.csr
    n = split.n_test
    ranks = np.empty(n, dtype=np.int64)
    ties = 0
    for sl in _batches(n, max(1, batch_size)):
        users = split.test_users[sl]
        pos = split.test_items[sl]
        scores = np.asarray(model.score_all(users), dtype=np.float64)
        rows = np.arange(len(users))
        sp = scores[rows, pos][:, None]
        # Competitors: every item but the held-out one and the user's training items.
        competitor = np.ones(scores.shape, dtype=bool)
        competitor[rows, pos] = False
        sub = csr[users]
        competitor[np.repeat(rows, np.diff(sub.indptr)), sub.indices] = False
        ranks[sl] = (~(scores < sp) & competitor).sum(axis=1)
        ties += int(((scores == sp) & competitor).any(axis=1).sum())
    return EvalResult("full", k, split.test_users.copy(), ranks, ties=ties)


def evaluate(
    model: Any, split: Split, *, protocol: str = "both", k: int = 10
) -> dict[str, EvalResult]:
    """Run ``sampled``, ``full`` or ``both`` protocols; returns results keyed by protocol."""
    if protocol not in ("sampled", "full", "both"):
        raise ValueError(f"unknown protocol {protocol!r}; expected sampled, full or both")
    out: dict[str, EvalResult] = {}
    if protocol in ("sampled", "both"):
        out["sampled"] = evaluate_sampled(model, split, k=k)
    if protocol in ("full", "both"):
        out["full"] = evaluate_full(model, split, k=k)
    return out


def paired_difference(a: EvalResult, b: EvalResult, metric: str = "ndcg") -> dict[str, float]:
    """Mean per-user difference a - b of ``metric`` (hr, ndcg or rr) with a 95% normal CI.

    Both results must cover the same users in the same order.
    """
    if not np.array_equal(a.users, b.users):
        raise ValueError("paired comparison needs results over the same users")
    d = getattr(a, metric) - getattr(b, metric)
    mean, se = mean_and_stderr(d)
    return {
        "mean": mean,
        "stderr": se,
        "ci_low": mean - 1.959964 * se,
        "ci_high": mean + 1.959964 * se,
        "n": int(len(d)),
    }

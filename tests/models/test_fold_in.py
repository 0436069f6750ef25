"""Fold-in of users the model has not seen: each model's optimum, checked independently."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from dotrec.data.splits import Split
from dotrec.errors import ConfigError
from dotrec.eval.protocols import evaluate_sampled
from dotrec.models import IALS, MatrixFactorization, Popularity
from dotrec.models.ials import _cholesky_rows
from tests.conftest import planted_split, require


def _mf_loss(m: MatrixFactorization, items: np.ndarray, x: np.ndarray) -> float:
    """The user's expected epoch loss (models/mf.py, Fold-in), written out independently."""
    s = m.item_factors.astype(np.float64) @ x[:-1] + x[-1] + m.item_bias + m.global_bias
    n_p = len(items)
    pos = np.log1p(np.exp(-s[items])).sum()
    neg = m.n_negatives * n_p / m.n_items * np.log1p(np.exp(s)).sum()
    return float(pos + neg + 0.5 * m.regularization * (m.n_negatives + 1) * n_p * (x @ x))


def test_mf_fold_in_is_the_minimum_of_the_users_expected_loss() -> None:
    split = planted_split()
    m = MatrixFactorization(embedding_dim=6, epochs=15, learning_rate=0.05, threads=1)
    m.fit(split.train)
    lists = [split.train.items_of(u) for u in (0, 1, 7)]
    rows = m.fold_in(lists)
    assert rows.shape == (3, 6)  # 5 factors and the user bias
    for items, row in zip(lists, rows):
        ref = minimize(lambda x, items=items: _mf_loss(m, items, x), np.zeros(6), method="BFGS")
        assert _mf_loss(m, items, row.astype(np.float64)) <= ref.fun + 1e-6
        np.testing.assert_allclose(row, ref.x, atol=2e-3)


def test_ials_fold_in_equals_the_training_solver_on_a_trained_user() -> None:
    split = planted_split()
    m = IALS(embedding_dim=6, epochs=4, solver="cholesky", threads=1).fit(split.train)
    csr = split.train.csr
    # One more exact user half-step, through the training code, from the final item factors.
    X = m.user_factors.copy()
    G = (m.unobserved_weight * (m.item_factors.T.astype(np.float64) @ m.item_factors)).astype(
        np.float32
    )
    reg = m.row_regularization(np.diff(csr.indptr), m.n_items)
    _cholesky_rows(X, m.item_factors, csr.indptr.astype(np.int64), csr.indices, G, reg)
    rows = m.fold_in([split.train.items_of(u) for u in range(split.train.n_users)])
    np.testing.assert_allclose(rows[:, :-1], X, atol=2e-4)
    assert not rows[:, -1].any()  # no user bias in iALS


def _held_out_users(split: Split, every: int = 5) -> tuple[Split, np.ndarray]:
    """The split's training data without every ``every``-th user, and those users."""
    held = np.arange(0, split.train.n_users, every)
    keep = ~np.isin(split.train.user_index, held)
    return split.train.select(keep), held


class _Rows:
    def __init__(self, users: np.ndarray, scores: np.ndarray) -> None:
        self.where = {int(u): r for r, u in enumerate(users)}
        self.scores = scores

    def score(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return self.scores[[self.where[int(x)] for x in u], i]


@pytest.mark.parametrize(
    "make",
    [
        lambda: MatrixFactorization(embedding_dim=9, epochs=30, learning_rate=0.05, threads=1),
        lambda: IALS(embedding_dim=8, epochs=6, threads=1),
    ],
    ids=["mf", "ials"],
)
def test_folded_in_users_rank_as_well_as_trained_ones(make) -> None:  # type: ignore[no-untyped-def]
    split = planted_split(n_users=200, n_items=60, per_user=10)
    reduced, held = _held_out_users(split)
    on = np.isin(split.test_users, held)
    sub = Split(split.train, split.test_users[on], split.test_items[on], split.negatives[on])
    trained = make().fit(split.train)
    part = make().fit(reduced)
    rows = part.fold_in([split.train.items_of(int(u)) for u in sub.test_users])
    folded = evaluate_sampled(_Rows(sub.test_users, part.score_rows(rows)), sub).hr.mean()
    base = evaluate_sampled(trained, sub).hr.mean()
    # Random scores give about 10/21 = 0.48 here and Popularity (items spread evenly) about
    # the same; the planted blocks are learnable, so both should be near 1.
    assert base >= 0.9 and folded >= base - 0.05, (base, folded)


def test_gmf_fold_in_reaches_the_minimum_of_its_convex_objective() -> None:
    torch = require("torch")
    from dotrec.models import GMF

    split = planted_split()
    m = GMF(factor=4, epochs=5, learning_rate=0.01, threads=1).fit(split.train)
    items = split.train.items_of(3)
    row = torch.tensor(m.fold_in([items], steps=100)[0], dtype=torch.float64, requires_grad=True)
    # The objective written out again: expected loss + the Gaussian prior of the trained users.
    w = {k: torch.tensor(v, dtype=torch.float64) for k, v in m.weights.items()}
    users = w["gmf.user_embedding"]
    mean = users.mean(0)
    precision = torch.linalg.inv(torch.cov(users.T) + 1e-6 * torch.eye(4, dtype=torch.float64))
    s = (w["gmf.item_embedding"] * row) @ w["output.weight"][0] + w["output.bias"][0]
    pos = torch.zeros(m.n_items, dtype=torch.bool)
    pos[torch.from_numpy(items)] = True
    w_neg = m.n_negatives * len(items) / (m.n_items - len(items))
    F = torch.nn.functional
    loss = F.softplus(-s[pos]).sum() + w_neg * F.softplus(s[~pos]).sum()
    loss = loss + 0.5 * (row - mean) @ precision @ (row - mean)
    loss.backward()
    assert float(row.grad.norm()) < 1e-2 * max(1.0, loss.item()), row.grad
    # ...and its scores agree with the scores the model computes from that row.
    np.testing.assert_allclose(
        m.score_rows(row.detach().numpy()[None].astype(np.float32))[0],
        s.detach().numpy(),
        rtol=1e-4,
        atol=1e-5,
    )


def test_popularity_folds_in_as_everyone() -> None:
    split = planted_split()
    m = Popularity().fit(split.train)
    rows = m.fold_in([[1, 2]])
    np.testing.assert_array_equal(m.score_rows(rows)[0], m.score_all([0])[0])


def test_bad_item_lists_are_clear_errors() -> None:
    split = planted_split()
    m = MatrixFactorization(embedding_dim=4, epochs=1, threads=1).fit(split.train)
    with pytest.raises(ConfigError, match="no items"):
        m.fold_in([[]])
    with pytest.raises(ConfigError, match="outside"):
        m.fold_in([[m.n_items]])

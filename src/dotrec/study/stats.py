"""Paired comparison of two cells over the same test users.

For each user the metric is first averaged over the cell's seeds; the test is then a paired
t-test over users on the differences (Student's t, two-sided), with a 95% confidence interval
``mean +- t_{0.975, n-1} * sd / sqrt(n)``. Users are the unit of replication; the variation
between seeds is not part of this interval (the results table shows it separately).

The two sides are chosen without looking at the test set: at each embedding size, the
dot-product model and the learned-similarity model with the best tuning-holdout value.

What is tested depends on the split's kind (:data:`TESTS`): HR@k and NDCG@k under the sampled
and the full-catalog protocol for leave-one-out; Recall@k and NDCG@k under full ranking over all
the test users for a split given by files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from dotrec.study.driver import FILES, LEAVE_ONE_OUT, Cell

#: The (protocol, metric) pairs a comparison tests, per kind of split.
TESTS: dict[str, tuple[tuple[str, str], ...]] = {
    LEAVE_ONE_OUT: (("sampled", "ndcg"), ("sampled", "hr"), ("full", "ndcg"), ("full", "hr")),
    FILES: (("ranking", "recall"), ("ranking", "ndcg")),
}


@dataclass(frozen=True)
class Paired:
    """Mean per-user difference ``a - b`` of one metric under one protocol."""

    protocol: str
    metric: str
    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    t: float
    p: float

    @property
    def significant(self) -> bool:
        """True if the 95% interval excludes zero (p < 0.05)."""
        return bool(self.p < 0.05)


@dataclass(frozen=True)
class Comparison:
    """The best dot-product cell against the best learned-similarity cell at one size."""

    size: int | None
    dot: Cell
    learned: Cell
    tests: tuple[Paired, ...]

    def test(self, protocol: str, metric: str) -> Paired:
        return next(t for t in self.tests if t.protocol == protocol and t.metric == metric)


def paired_test(a: np.ndarray, b: np.ndarray, protocol: str, metric: str) -> Paired:
    """Paired t-test and 95% CI of ``a - b`` over users (see the module doc)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError("paired comparison needs two equal-length arrays of >= 2 users")
    d = a - b
    n = len(d)
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd <= 1e-12 * max(1.0, abs(mean)):  # (numerically) constant differences
        t_stat, p = (0.0, 1.0) if mean == 0.0 else (float(np.sign(mean)) * np.inf, 0.0)
        half = 0.0
    else:
        res = stats.ttest_rel(a, b)
        t_stat, p = float(res.statistic), float(res.pvalue)
        half = float(stats.t.ppf(0.975, n - 1)) * sd / np.sqrt(n)
    return Paired(
        protocol,
        metric,
        n,
        float(a.mean()),
        float(b.mean()),
        mean,
        mean - half,
        mean + half,
        t_stat,
        p,
    )


def compare(dot: Cell, learned: Cell, k: int, size: int | None) -> Comparison:
    """Paired tests ``dot - learned`` of the metrics of the cells' split kind (:data:`TESTS`)."""
    if dot.kind != learned.kind:
        raise ValueError("the two cells were tested on different kinds of split")
    if not np.array_equal(dot.runs[0].users, learned.runs[0].users):
        raise ValueError("the two cells were evaluated on different test users")
    tests = tuple(
        paired_test(dot.per_user(p, m, k), learned.per_user(p, m, k), p, m)
        for p, m in TESTS[dot.kind]
    )
    return Comparison(size, dot, learned, tests)


def _best(cells: list[Cell]) -> Cell | None:
    scored = [c for c in cells if c.tuning.best_value is not None]
    return max(scored, key=lambda c: c.tuning.best_value or 0.0, default=None)


def comparisons(cells: tuple[Cell, ...], k: int) -> list[Comparison]:
    """One comparison per size that has both kinds of model, then (with several sizes) one
    over all sizes (``size=None``); each side is picked by its tuning-holdout value."""
    out: list[Comparison] = []
    sizes = sorted({c.size for c in cells})
    groups: list[tuple[int | None, list[Cell]]] = [
        (s, [c for c in cells if c.size == s]) for s in sizes
    ]
    if len(sizes) > 1:
        groups.append((None, list(cells)))
    for size, group in groups:
        dot = _best([c for c in group if c.is_dot_product])
        learned = _best([c for c in group if not c.is_dot_product])
        if dot is not None and learned is not None:
            out.append(compare(dot, learned, k, size))
    return out

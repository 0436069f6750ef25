"""The paired test over users."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dotrec.study.stats import paired_test


def test_matches_scipy_and_the_t_interval() -> None:
    r = np.random.default_rng(0)
    a = r.random(500)
    b = a - 0.05 + 0.2 * r.standard_normal(500)
    p = paired_test(a, b, "sampled", "ndcg")
    ref = stats.ttest_rel(a, b)
    assert p.t == pytest.approx(ref.statistic) and p.p == pytest.approx(ref.pvalue)
    d = a - b
    half = stats.t.ppf(0.975, 499) * d.std(ddof=1) / np.sqrt(500)
    assert (p.ci_low, p.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert p.diff > 0 and p.significant


def test_equal_and_constant_differences() -> None:
    a = np.array([0.0, 1.0, 0.5])
    same = paired_test(a, a, "full", "hr")
    assert (same.diff, same.p, same.significant) == (0.0, 1.0, False)
    shifted = paired_test(a + 0.1, a, "full", "hr")
    assert shifted.diff == pytest.approx(0.1) and shifted.significant


def test_needs_paired_arrays() -> None:
    with pytest.raises(ValueError):
        paired_test(np.zeros(3), np.zeros(4), "full", "hr")

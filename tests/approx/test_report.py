"""Aggregation over repeats, the trend analysis and verdict, and the summary text."""

from __future__ import annotations

import math

import pytest

from dotrec.approx.grid import MODELS, PARTS
from dotrec.approx.report import aggregate, summary_markdown, trends, verdict


def _record(d: int, n: int, excess: float, repeat: int = 0, m: int = 1, dot: float = 0.85) -> dict:
    r = {
        "d": d,
        "n_users": n,
        "first_layer_mult": m,
        "repeat": repeat,
        "seconds": 1.0,
        "cpu_seconds": 1.0,
    }
    for model in MODELS:
        for part in PARTS:
            r[f"{model}_{part}"] = {"mlp": dot + excess, "dot": dot, "zero": 1.13}[model]
    return r


def _grid(excess, dims=(16, 32), users=(1000, 2000), m: int = 1) -> list[dict]:
    return [_record(d, n, excess(d, n), m=m) for d in dims for n in users]


META = {
    "dims": (16, 32),
    "users": (1000, 2000),
    "first_layer_mults": (1,),
    "repeats": 1,
    "epochs": 2,
    "batch_size": 256,
    "learning_rate": 0.001,
    "seed": 0,
    "device": "cpu",
}


def test_aggregate_mean_and_spread_over_repeats() -> None:
    cells = aggregate(
        [_record(16, 1000, 0.1, repeat=0), _record(16, 1000, 0.3, repeat=1), _record(32, 1000, 0.2)]
    )
    assert [(c["d"], c["repeats"]) for c in cells] == [(16, 2), (32, 1)]
    assert cells[0]["excess_test_mean"] == pytest.approx(0.2)
    assert cells[0]["excess_test_std"] == pytest.approx(math.sqrt(0.02))
    assert cells[0]["mlp_fresh_mean"] == pytest.approx(1.05)
    assert math.isnan(cells[1]["excess_test_std"])


def test_paper_pattern_matches() -> None:
    cells = aggregate(_grid(lambda d, n: d / n))
    (t,) = trends(cells)
    assert t.grows_with_d == 2 and t.shrinks_with_users == 2
    assert t.users_needed == {16: 1000, 32: 2000}
    assert verdict([t]).startswith("matches the paper's finding")
    text = summary_markdown(cells, META)
    assert "grows in 2 of 2 user counts" in text and "shrinks in 2 of 2 dimensions" in text
    assert "0.0160 → 0.0320 (+0.0160)" in text  # 1000 users: 16/1000 -> 32/1000
    assert "all 4 cells within 0.85 ± 0.01" in text


def test_reversed_and_mixed_patterns_do_not_match() -> None:
    reverse = trends(aggregate(_grid(lambda d, n: n / d / 1e5)))
    assert verdict(reverse).startswith("does not match")
    assert reverse[0].users_needed[16] == 1000  # the reference cell itself
    mixed = trends(aggregate(_grid(lambda d, n: d * n / 1e6)))  # grows with d and with users
    assert verdict(mixed).startswith("matches the paper's finding only in part")
    assert "more than 2000 users (not reached)" in summary_markdown(
        aggregate(_grid(lambda d, n: d * n / 1e6)), META
    )


def test_single_dimension_is_not_judged_and_bad_baselines_are_flagged() -> None:
    records = _grid(lambda d, n: 0.1, dims=(16,))
    assert verdict(trends(aggregate(records))).startswith("not judged")
    records = [_record(16, 1000, 0.1, dot=0.87), _record(16, 2000, 0.1)]
    assert "1 of 2 cells outside 0.85 ± 0.01" in summary_markdown(aggregate(records), META)

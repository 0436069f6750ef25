"""The serving benchmark: a small run writes its table, JSON and plot with honest fields."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dotrec.bench.serving import (
    ServingBenchConfig,
    growth_exponent,
    neumf_for_catalog,
    run_serving_bench,
    sample_catalog,
    sample_vectors,
    stream_catalog,
    summary_lines,
    write_reports,
)
from dotrec.cli import app
from dotrec.errors import ConfigError
from tests.conftest import require


def test_sample_vectors_keeps_mean_covariance_and_norm_spread() -> None:
    r = np.random.default_rng(0)
    src = r.standard_normal((500, 4)) * r.uniform(0.2, 3.0, (500, 1)) + [1, 0, 0, 2]
    out = sample_vectors(src, 200_000, seed=1, purpose="test")
    assert out.dtype == np.float32 and out.shape == (200_000, 4)
    np.testing.assert_allclose(out.mean(0), src.mean(0), atol=0.03)
    np.testing.assert_allclose(np.cov(out, rowvar=False), np.cov(src, rowvar=False), atol=0.1)
    ratio = np.std(np.linalg.norm(out, axis=1)) / np.std(np.linalg.norm(src, axis=1))
    assert 0.8 < ratio < 1.2
    np.testing.assert_array_equal(out[:10], sample_vectors(src, 200_000, 1, "test")[:10])


def test_stream_catalog_writes_the_sampled_catalog_to_a_memmap(tmp_path: Path) -> None:
    from tests.retrieval.conftest import trained_mf

    model = trained_mf(dim=8)
    n = (1 << 18) + 1000  # more than one chunk
    items, bias = stream_catalog(model, n, tmp_path / "items.npy", seed=2)
    assert isinstance(items, np.memmap) and not items.flags.writeable
    want_items, want_bias, _ = sample_catalog(model, n, 1, seed=2)
    np.testing.assert_array_equal(items, want_items)
    np.testing.assert_array_equal(bias, want_bias)


def test_growth_exponent() -> None:
    assert growth_exponent([1e4, 1e5, 1e6], [1e-3, 1e-2, 1e-1]) == pytest.approx(1.0)
    assert growth_exponent([1e4], [1.0]) is None


def test_neumf_for_catalog_scores_every_item() -> None:
    require("torch")
    model = neumf_for_catalog(1000, 8)
    s = model.score_all(np.zeros(1, np.int64))
    assert s.shape == (1, 1000) and np.isfinite(s).all() and s.std() > 0


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="unknown methods"):
        ServingBenchConfig(methods=("exact", "lsh"))
    with pytest.raises(ConfigError, match="sizes"):
        ServingBenchConfig(sizes=(10,))


def test_small_bench_run(tmp_path: Path) -> None:
    require("matplotlib")
    methods = ("exact", "hnsw", "ivf", "neumf") if _has_torch() else ("exact", "hnsw", "ivf")
    cfg = ServingBenchConfig(
        sizes=(500, 3000),
        dim=8,
        methods=methods,
        recall_queries=100,
        latency_queries=30,
        latency_budget=0.5,
        batch_queries=256,
        bandwidth_bytes=1 << 26,
    )
    result = run_serving_bench(cfg, log=lambda _: None)
    write_reports(result, tmp_path)
    res = json.loads((tmp_path / "serving.json").read_text())
    assert (tmp_path / "serving.png").stat().st_size > 0
    assert "| items | method |" in (tmp_path / "serving.md").read_text()
    rows = res["rows"]
    assert {(row["size"], row["method"]) for row in rows} == {
        (n, m) for n in (500, 3000) for m in methods
    }
    for row in rows:
        assert row["p99_s"] >= row["median_s"] > 0
        # exact search and whole-catalog scoring are exact; the ANN indexes on these small
        # catalogs come near it (a broken index does not)
        if row["method"] in ("exact", "neumf"):
            assert row["recall"] == 1.0, row
        else:
            assert row["recall"] >= 0.8, row
    exact = [row for row in rows if row["method"] == "exact"]
    assert all(row["bandwidth_bound_s"] > 0 and row["batched_qps"] > 0 for row in exact)
    assert set(res["exponents"]) == set(methods)
    assert res["bandwidth_bytes_per_s"]["1"] > 1e8
    assert "cpu" in res["machine"] and res["summary"]["size"] == 3000
    assert any("growth exponents" in line for line in summary_lines(result))


def test_bench_cli_rejects_a_learned_model(tmp_path: Path, popularity_dir: Path) -> None:
    r = CliRunner().invoke(
        app, ["bench", "serving", "--model", str(popularity_dir), "--out", str(tmp_path)]
    )
    assert isinstance(r.exception, ConfigError) and "dot-product" in str(r.exception)


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True

"""A study on a split given by files (LightGCN's layout): full ranking, records, report, CLI."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from dotrec.data.registry import load_file_split
from dotrec.data.splits import FileSplit
from dotrec.errors import ArtifactError, ConfigError
from dotrec.eval.ranking import evaluate_ranking
from dotrec.models import load_model
from dotrec.study import Cell, StudyConfig, StudyResult, run_study, write_report
from dotrec.study.driver import FILES, LEAVE_ONE_OUT, cell_dir
from tests.study.test_study import Recorder

K = 20
CONFIG = StudyConfig(
    models=("mf", "ials"),
    dims=(4, 8),
    n_trials=2,
    n_seeds=2,
    k=K,
    epoch_scale=0.1,
    threads=1,
    pruner="none",
)


def write_blocks(folder: Path, n_users: int = 240, block: int = 40) -> Path:
    """Block-structured users (4 blocks of ``block`` items): 10 training and 3 to 6 test items
    each, in train.txt / test.txt (one line per user: user, then its items)."""
    folder.mkdir(parents=True)
    r = np.random.default_rng(0)
    train, test = [], []
    for u in range(n_users):
        items = r.permutation(np.arange(block) + block * (u % 4))[: 10 + 3 + u % 4]
        train.append(" ".join(map(str, [u, *items[:10]])))
        test.append(" ".join(map(str, [u, *items[10:]])))
    (folder / "train.txt").write_text("\n".join(train) + "\n")
    (folder / "test.txt").write_text("\n".join(test) + "\n")
    return folder


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> FileSplit:
    return load_file_split(str(write_blocks(tmp_path_factory.mktemp("files") / "blocks")))


@pytest.fixture(scope="module")
def study(split: FileSplit, tmp_path_factory: pytest.TempPathFactory) -> tuple[StudyResult, Path]:
    out = tmp_path_factory.mktemp("study")
    return run_study(split, CONFIG, out), out


def test_each_seed_is_tested_by_full_ranking_and_recorded(
    split: FileSplit, study: tuple[StudyResult, Path]
) -> None:
    result, out = study
    assert result.kind == FILES and result.protocols == ("ranking",)
    assert result.n_negatives is None
    assert (result.n_test, result.n_test_pairs) == (240, len(split.test))
    assert [(c.model, c.size) for c in result.cells] == [
        (m, d) for d in (4, 8) for m in CONFIG.models
    ]
    for cell in result.cells:
        assert [r.seed for r in cell.runs] == [0, 1]
        assert cell.kind == FILES and cell.metric("ranking", f"recall@{K}").shape == (2,)
        with pytest.raises(KeyError, match="has ranking"):
            cell.metric("sampled", f"hr@{K}")
        path = cell_dir(out, cell.model, cell.size) / "seed1"
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["split_kind"] == FILES and meta["k"] == K
        assert set(meta["summaries"]) == {"ranking"}
        with np.load(path.with_suffix(".npz")) as z:
            assert sorted(z.files) == [
                "ranking_ndcg",
                "ranking_precision",
                "ranking_recall",
                "users",
            ]


def test_per_user_arrays_are_those_of_the_saved_model(
    split: FileSplit, study: tuple[StudyResult, Path]
) -> None:
    result, out = study
    for cell in result.cells:
        for run in cell.runs:
            model = load_model(cell_dir(out, cell.model, cell.size) / f"seed{run.seed}")
            again = evaluate_ranking(model, split, k=K)
            np.testing.assert_array_equal(run.users, again.users)
            for metric in ("recall", "ndcg", "precision"):
                np.testing.assert_array_equal(
                    run.per_user("ranking", metric, K), getattr(again, metric)
                )
            assert run.summaries["ranking"] == again.summary()
            with pytest.raises(KeyError, match="recall@10"):
                run.per_user("ranking", "recall", 10)  # recorded at the study's k only


def test_rerun_reuses_every_record_without_refitting(
    split: FileSplit, study: tuple[StudyResult, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dotrec.study.driver as driver

    def no_refit(*args: object, **kwargs: object) -> None:
        raise AssertionError("a recorded seed was fitted again")

    result, out = study
    monkeypatch.setattr(driver, "fit_config", no_refit)
    recorder = Recorder()
    again = run_study(split, CONFIG, out, recorder)
    assert recorder.reused == [CONFIG.n_seeds] * len(result.cells)
    for a, b in zip(result.cells, again.cells, strict=True):
        assert np.array_equal(a.per_user("ranking", "ndcg", K), b.per_user("ranking", "ndcg", K))


def test_a_record_of_the_other_kind_is_not_reused(
    split: FileSplit, study: tuple[StudyResult, Path], tmp_path: Path
) -> None:
    from dotrec.eval.protocols import PROTOCOL_VERSION
    from dotrec.study.driver import _record_key, _seed_record

    result, out = study
    cell = result.cells[0]
    path = cell_dir(out, cell.model, cell.size) / "seed0"
    key = _record_key(split, cell.tuning.best_params, K)
    assert _seed_record(path, key) is not None
    loo = {**key, "split_kind": LEAVE_ONE_OUT, "protocol_version": PROTOCOL_VERSION}
    del loo["test_fingerprint"]
    assert _seed_record(path, loo) is None
    # a record without a kind was written before file splits: it is a leave-one-out one
    meta = json.loads(path.with_suffix(".json").read_text())
    del meta["split_kind"]
    copy = tmp_path / "seed0"
    copy.with_suffix(".json").write_text(json.dumps(meta))
    copy.with_suffix(".npz").write_bytes(path.with_suffix(".npz").read_bytes())
    assert _seed_record(copy, key) is None
    # another test file with the same training data is another study
    other = {**key, "test_fingerprint": "0" * len(key["test_fingerprint"])}
    assert _seed_record(path, other) is None
    # a matching record without its per-user arrays is an error, not a silent refit
    meta["split_kind"] = FILES
    copy.with_suffix(".json").write_text(json.dumps(meta))
    with np.load(path.with_suffix(".npz")) as z:
        np.savez(copy.with_suffix(".npz"), users=z["users"], ranking_recall=z["ranking_recall"])
    with pytest.raises(ArtifactError, match="lacks ranking_ndcg, ranking_precision"):
        _seed_record(copy, key)


def test_report_uses_the_ranking_metrics(study: tuple[StudyResult, Path], tmp_path: Path) -> None:
    result, _ = study
    md_path, html_path = write_report(result, tmp_path)
    md, page = md_path.read_text(), html_path.read_text()
    header = f"| model | size | width | Recall@{K} | NDCG@{K} | Precision@{K} | fit s |"
    assert header in md
    assert (
        f"full ranking over all items, training items excluded, {result.n_test} test users "
        f"with {result.n_test_pairs} test pairs" in md
    )
    assert "sampled" not in md.lower() and "sampled" not in page.lower()
    assert "HR@" not in md
    for cell in result.cells:
        recall = cell.metric("ranking", f"recall@{K}")
        row = rf"^\| {cell.model} \| {cell.counted_size} \| d={cell.width} \| {recall.mean():.4f} ±"
        assert re.search(row, md, flags=re.M), row
    assert "nothing to compare" in md  # mf and ials are both dot products
    assert "published [" not in md  # the study is on "blocks", not gowalla


def test_paired_tests_equal_a_direct_computation(
    study: tuple[StudyResult, Path], tmp_path: Path
) -> None:
    from dotrec.study.report import comparison_blocks, render_markdown
    from dotrec.study.stats import compare, comparisons

    result, out = study
    mf, ials = (c for c in result.cells if c.size == 8)
    comp = compare(mf, ials, K, 8)
    assert [(t.protocol, t.metric) for t in comp.tests] == [
        ("ranking", "recall"),
        ("ranking", "ndcg"),
    ]

    def per_user(cell: Cell, metric: str) -> np.ndarray:
        folder = cell_dir(out, cell.model, cell.size)
        arrays = [np.load(folder / f"seed{s}.npz")[f"ranking_{metric}"] for s in (0, 1)]
        return np.mean(arrays, axis=0)

    for t in comp.tests:
        a, b = per_user(mf, t.metric), per_user(ials, t.metric)
        d = a - b
        ref = stats.ttest_rel(a, b)
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        assert t.n == len(d) == result.n_test
        assert (t.mean_a, t.mean_b, t.diff) == pytest.approx((a.mean(), b.mean(), d.mean()))
        assert (t.t, t.p) == pytest.approx((ref.statistic, ref.pvalue))
        assert (t.ci_low, t.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))

    # The report states the tests of a dot product against a learned similarity: here iALS
    # relabelled as GMF stands in for one (the comparison only reads the per-user arrays).
    as_learned = dataclasses.replace(
        result,
        cells=tuple(
            dataclasses.replace(c, model="gmf") if c.model == "ials" else c for c in result.cells
        ),
    )
    assert [c.size for c in comparisons(as_learned.cells, K)] == [4, 8, None]
    md = render_markdown(comparison_blocks(as_learned))
    recall = next(t for t in comp.tests if t.metric == "recall")
    assert f"| 8 | mf at size 8 | gmf at size 8 | ranking | Recall@{K} |" in md
    assert f"full-ranking Recall@{K}" in md and f"difference dot - learned {recall.diff:+.4f}" in md


def test_gowalla_rows_are_published_at_k20_only(
    study: tuple[StudyResult, Path], tmp_path: Path
) -> None:
    from dotrec.study.published import PUBLISHED, published_for

    result, _ = study
    md = write_report(dataclasses.replace(result, dataset="gowalla"), tmp_path)[0].read_text()
    rows = [r for r in md.splitlines() if "| published [" in r]
    gowalla = [p for p in PUBLISHED if p.dataset == "gowalla"]
    assert len(rows) == len(gowalla) == 10
    assert "| LightGCN | - | - | 0.1830 | 0.1554 | - | - | - | published [1] |" in md
    assert "X. He, K. Deng, X. Wang, Y. Li, Y. Zhang, M. Wang. LightGCN" in md
    (simplex,) = [r for r in rows if r.startswith("| SimpleX |")]
    assert "selected on the test set" in simplex
    # our rows are unchanged: the published numbers are never part of the means
    ours = write_report(result, tmp_path / "ours")[0].read_text()
    assert [r for r in ours.splitlines() if "| ours," in r] == [
        r for r in md.splitlines() if "| ours," in r
    ]
    assert published_for("gowalla", CONFIG.models, 10, ("ranking",)) == []
    assert published_for("gowalla", CONFIG.models, 20, ("sampled", "full")) == []
    assert published_for("ml-1m", ("mf",), 20, ("ranking",)) == []


def test_cli_study_on_a_folder_of_files(tmp_path: Path) -> None:
    from dotrec.cli import app

    folder = write_blocks(tmp_path / "gowalla", n_users=120)  # named gowalla, but k = 10
    out = tmp_path / "out"
    args = ["study", "--dataset", str(folder), "--models", "mf,ials", "--dims", "4"]
    args += ["--trials", "1", "--seeds", "1", "--epoch-scale", "0.1", "--pruner", "none"]
    args += ["--threads", "1", "-k", "10", "--metric", "recall", "--out", str(out)]
    runner = CliRunner()
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "Recall@10" in r.output and "NDCG@10" in r.output
    assert "Precision@10" not in r.output and "sampled" not in r.output.lower()
    # Not a terminal: each cell's line on stderr stays whole, not wrapped at 80 columns.
    line = r"ials size 4: holdout recall@10 \S+ \(best of 1 trial\), test Recall@10 \S+ "
    line += r"over 1 seed\n"
    assert re.search(line, r.output), r.output
    md = (out / "report.md").read_text()
    assert "holdout Recall@10" in md and "Precision@10" in md
    assert "published [" not in md and "No published numbers are shown" in md
    assert (cell_dir(out, "ials", 4) / "seed0.npz").exists()
    # --interim with one more model: the two cells done, in OUT/interim/, gmf not trained.
    wider = [*args, "--interim"]
    wider[wider.index("mf,ials")] = "mf,ials,gmf"
    r = runner.invoke(app, wider)
    assert r.exit_code == 0, r.output
    assert "interim report of 2 of 3 cells" in r.output
    assert "(interim: 2 of 3 cells)" in (out / "interim" / "report.md").read_text()
    assert not cell_dir(out, "gmf", 4).exists()
    r = runner.invoke(app, [*args[:-1], str(tmp_path / "rr"), "--metric", "rr"])
    assert isinstance(r.exception, ConfigError)
    assert "metric must be one of ndcg, hr, recall" in str(r.exception)

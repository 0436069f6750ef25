"""A split given by files (train.txt / test.txt) through train, evaluate, tune and the rest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dotrec.cli import app
from dotrec.data.registry import load_file_split
from dotrec.errors import ConfigError
from dotrec.eval.ranking import evaluate_ranking
from dotrec.models import load_model

runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Block-structured users: 4 blocks of 15 items; 8 training and 3 test items each."""
    d = tmp_path_factory.mktemp("files") / "blocks"
    d.mkdir()
    r = np.random.default_rng(0)
    train, test = [], []
    for u in range(120):
        block = np.arange(15) + 15 * (u % 4)
        items = r.permutation(block)[:11]
        train.append(" ".join(map(str, [u, *items[:8]])))
        test.append(" ".join(map(str, [u, *items[8:]])))
    (d / "train.txt").write_text("\n".join(train) + "\n")
    (d / "test.txt").write_text("\n".join(test) + "\n")
    return d


def test_train_with_early_stopping_and_evaluate(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "mf"
    args = ["train", "mf", "--dataset", str(folder), "--embedding-dim", "9", "--epochs", "40"]
    args += ["--learning-rate", "0.05", "--threads", "1", "-k", "5", "--early-stopping", "3"]
    r = runner.invoke(app, [*args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "recall@5" in r.output and "full ranking" in r.output
    r = runner.invoke(app, ["evaluate", str(out), "--dataset", str(folder), "-k", "5", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)["ranking"]
    model = load_model(out)
    want = evaluate_ranking(model, load_file_split(str(folder)), k=5).summary()
    assert got == want
    # the blocks are learnable: far above the 5/45 a random ranking of the free items gives
    assert got["recall@5"] >= 0.6, got
    selection = model.fit_info["early_stopping"]
    assert selection["best_epoch"] < 40 and selection["metric"] == "ndcg@5"


def test_commands_that_do_not_take_file_splits_say_so(folder: Path) -> None:
    r = runner.invoke(app, ["compare", "--dataset", str(folder), "--models", "popularity"])
    assert isinstance(r.exception, ConfigError) and "split given by files" in str(r.exception)


def test_tuning_on_a_file_split_reads_its_holdout(folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    from dotrec.tune import tune

    split = load_file_split(str(folder))
    result = tune(
        split,
        "mf",
        size=8,
        n_trials=2,
        storage=f"sqlite:///{tmp_path / 'o.db'}",
        k=5,
        epoch_scale=0.1,
        pruner="none",
        metric="recall",
    )
    assert result.complete == 2 and 0.0 < result.best_value <= 1.0
    with pytest.raises(ConfigError, match="metric must be one of ndcg, hr, recall"):
        tune(split, "mf", size=8, n_trials=1, storage=f"sqlite:///{tmp_path / 'p.db'}", metric="rr")


def test_tune_scores_a_sample_of_holdout_users(folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    args = ["tune", "mf", "--dataset", str(folder), "--dim", "8", "--trials", "1", "-k", "5"]
    args += ["--epoch-scale", "0.05", "--pruner", "none", "--threads", "1", "--seed", "2"]
    r = runner.invoke(app, [*args, "--holdout-users", "30", "--out", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert got["settings"]["holdout_users"] == 30
    # the stored study refuses to continue with another sample size
    r = runner.invoke(
        app, [*args, "--holdout-users", "40", "--out", str(tmp_path), "--trials", "2"]
    )
    assert isinstance(r.exception, ConfigError) and "holdout_users: 30 there, 40 here" in str(
        r.exception
    )


def test_train_early_stopping_on_a_sample_of_holdout_users(folder: Path, tmp_path: Path) -> None:
    args = ["train", "mf", "--dataset", str(folder), "--embedding-dim", "9", "--epochs", "12"]
    args += ["--learning-rate", "0.05", "--threads", "1", "-k", "5", "--early-stopping", "3"]
    r = runner.invoke(app, [*args, "--holdout-users", "25", "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    selection = load_model(tmp_path / "m").fit_info["early_stopping"]
    # the values are those of the sampled holdout: score the same epochs by hand
    from dotrec.models import MatrixFactorization
    from dotrec.train.early_stopping import select_epochs

    split = load_file_split(str(folder))
    m = MatrixFactorization(embedding_dim=9, epochs=12, learning_rate=0.05, threads=1)
    want = select_epochs(m, split, patience=3, k=5, holdout_users=25)
    assert selection["best_epoch"] == want.best_epoch
    assert selection["values"] == {str(e): v for e, v in want.values.items()}
    full = select_epochs(m, split, patience=3, k=5)
    assert full.values != want.values  # 25 of 120 users score differently from all of them

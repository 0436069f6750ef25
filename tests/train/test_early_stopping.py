"""Early stopping on the tuning holdout: the choice, the refit, NeuMF's epoch 0, the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dotrec.cli import app
from dotrec.errors import ConfigError
from dotrec.eval.protocols import evaluate_sampled
from dotrec.models import GMF, MLP, MatrixFactorization, NeuMF
from dotrec.train import fit_early_stopped, select_epochs
from tests.conftest import planted_split, require


def test_selection_reads_the_holdout_only_and_stops_after_patience() -> None:
    split = planted_split()
    model = MatrixFactorization(embedding_dim=8, epochs=30, learning_rate=0.05, threads=1)
    seen: list[int] = []
    sel = select_epochs(
        model, split, patience=3, holdout_negatives=20, on_epoch=lambda e, v: seen.append(e)
    )
    assert seen == sorted(sel.values) and seen[0] == 1
    assert sel.best_value == max(sel.values.values())
    assert sel.values[sel.best_epoch] == sel.best_value
    # It stopped 3 epochs after the best, or ran out of epochs.
    assert max(sel.values) == min(30, sel.best_epoch + 3)
    # The values are the holdout's: recomputed independently for the best epoch.
    holdout = split.holdout(0, 20)
    again = MatrixFactorization(
        embedding_dim=8, epochs=sel.best_epoch, learning_rate=0.05, threads=1
    ).fit(holdout.train)
    assert evaluate_sampled(again, holdout).ndcg.mean() == pytest.approx(sel.best_value)
    # Changing the test split (items and negatives) changes nothing: it is never read.
    other = dataclasses.replace(
        split,
        test_items=np.roll(split.test_items, 1),
        negatives=np.roll(split.negatives, 1, axis=0),
    )
    assert select_epochs(model, other, patience=3, holdout_negatives=20).values == sel.values
    assert not model.n_items  # the model given is not fitted


def test_fit_early_stopped_refits_the_best_epochs_on_all_training_data() -> None:
    split = planted_split()
    model = MatrixFactorization(embedding_dim=8, epochs=12, learning_rate=0.05, threads=1)
    fitted, sel = fit_early_stopped(model, split, patience=2, holdout_negatives=20)
    assert fitted.config()["epochs"] == sel.best_epoch == fitted.epochs_done
    assert fitted.train_fingerprint == split.train.fingerprint()
    assert fitted.fit_info["early_stopping"]["best_epoch"] == sel.best_epoch
    with pytest.raises(ConfigError, match="patience"):
        select_epochs(model, split, patience=0)


def test_pretrained_neumf_considers_epoch_zero() -> None:
    require("torch")
    split = planted_split()
    kw = {"factor": 8, "batch_size": 64, "learning_rate": 0.01, "threads": 1, "epochs": 2}
    gmf, mlp = GMF(**kw).fit(split.train), MLP(**kw).fit(split.train)
    neumf = NeuMF(factor=8, batch_size=64, learning_rate=0.001, threads=1, epochs=3)
    neumf.set_pretrained(gmf, mlp)
    sel = select_epochs(neumf, split, patience=2, holdout_negatives=20)
    assert 0 in sel.values and set(sel.values) <= {0, 1, 2, 3}


def test_cli_early_stopping(tmp_path: Path) -> None:
    out = tmp_path / "m"
    r = CliRunner().invoke(
        app,
        [
            "train",
            "mf",
            "--epochs",
            "8",
            "--early-stopping",
            "2",
            "--threads",
            "1",
            "--out",
            str(out),
            "--protocol",
            "none",
        ],
    )
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "model.json").read_text())
    best = meta["fit"]["early_stopping"]["best_epoch"]
    assert meta["config"]["epochs"] == best == meta["fit"]["epochs"] and "holdout: best epoch" in (
        r.output
    )

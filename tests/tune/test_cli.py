"""`dotrec tune` on the command line: output, result file, one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from dotrec.cli import app

runner = CliRunner()


def test_tune_prints_the_best_configuration_and_writes_json(tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "tune",
            "ials",
            "--dataset",
            "synthetic",
            "--dim",
            "8",
            "--trials",
            "2",
            "--epoch-scale",
            "0.2",
            "--threads",
            "1",
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "finished trials" in res.output and "2 of 2" in res.output
    saved = json.loads((tmp_path / "synthetic_ials_d8.json").read_text())
    assert saved["complete"] + saved["pruned"] == 2 and saved["best_params"]
    assert (tmp_path / "optuna.db").exists()


def test_errors_are_one_line(tmp_path: Path) -> None:
    for args, words in (
        (["tune", "popularity", "--trials", "1"], "cannot tune model 'popularity'"),
        (
            ["tune", "mf", "--trials", "1", "--storage", "postgresql://u:pw@127.0.0.1:1/x"],
            "cannot open storage postgresql://u:***@127.0.0.1:1/x",
        ),
        (["tune", "mf", "--trials", "0"], "trials must be >= 1"),
        (["study", "--models", "mf,nope"], "cannot tune model 'nope'"),
    ):
        res = runner.invoke(app, [*args, "--out", str(tmp_path)], standalone_mode=False)
        assert res.exception is not None and words in str(res.exception), (args, res.output)
        assert "\n" not in str(res.exception)


def test_train_config_fits_the_tuned_best_configuration(tmp_path: Path) -> None:
    from dotrec.models import load_model

    for model, dim, width_key, width in (("mf", 8, "embedding_dim", 8), ("neumf", 24, "factor", 8)):
        out = tmp_path / model
        res = runner.invoke(
            app,
            [
                "tune",
                model,
                "--dataset",
                "synthetic",
                "--dim",
                str(dim),
                "--trials",
                "1",
                "--epoch-scale",
                "0.1",
                "--threads",
                "1",
                "--pruner",
                "none",
                "--out",
                str(out),
            ],
        )
        assert res.exit_code == 0, res.output
        result = out / f"synthetic_{model}_d{dim}.json"
        best = json.loads(result.read_text())["best_params"]
        # tune prints the command that trains its best configuration on all the training data.
        printed = " ".join(res.output.split())
        # (--data-dir appears when DOTREC_DATA_DIR is set)
        expected = rf"dotrec train {model} --dataset synthetic (--data-dir \S+ )?--config "
        assert re.search(expected + re.escape(str(result)), printed), printed
        fitted = out / "fitted"
        args = [
            "train",
            "--config",
            str(result),
            "--threads",
            "1",
            "--protocol",
            "none",
            "--out",
            str(fitted),
        ]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        cfg = load_model(fitted).config()
        assert cfg[width_key] == width  # the size converted to the model's width (NeuMF: 3k)
        tuned = {k: v for k, v in best.items() if not k.startswith("pretrain_")}
        assert {k: cfg[k] for k in tuned} == tuned
        if model == "neumf":
            assert cfg["pretrain"] is True
        # A flag overrides the file.
        res = runner.invoke(app, [*args[:-1], str(out / "two"), "--epochs", "2"])
        assert res.exit_code == 0, res.output
        assert load_model(out / "two").config()["epochs"] == 2
    res = runner.invoke(app, ["train", "ials", "--config", str(result)])
    assert res.exit_code != 0 and "tunes 'neumf', not 'ials'" in str(res.exception)

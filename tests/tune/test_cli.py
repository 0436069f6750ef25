"""`dotrec tune` on the command line: output, result file, one-line errors."""

from __future__ import annotations

import json
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

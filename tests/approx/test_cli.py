"""``dotrec approx-dot`` end to end on a tiny grid, resuming, and the results file's guards."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import require

require("torch")

from typer.testing import CliRunner  # noqa: E402

import dotrec.approx.mlp  # noqa: E402
from dotrec.approx.grid import RESULTS_FILE, GridSpec, run_grid  # noqa: E402
from dotrec.cli import app  # noqa: E402
from dotrec.errors import ArtifactError, ConfigError  # noqa: E402

runner = CliRunner()
TINY = [
    "approx-dot",
    "--dims",
    "4,8",
    "--users",
    "200,300",
    "--first-layer-mult",
    "1",
    "--repeats",
    "1",
    "--epochs",
    "1",
    "--fresh-pairs",
    "1000",
    "--threads",
    "1",
]
SPEC = GridSpec(
    dims=(4,), users=(200, 300), first_layer_mults=(1, 2), repeats=1, epochs=1, n_fresh=500
)


@pytest.fixture
def count_training(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record (d, m) of every MLP actually trained."""
    calls: list[tuple[int, int]] = []
    real = dotrec.approx.mlp.train_mlp

    def counting(data, first_layer_mult, **kw):
        calls.append((data.dim, first_layer_mult))
        return real(data, first_layer_mult, **kw)

    monkeypatch.setattr(dotrec.approx.mlp, "train_mlp", counting)
    return calls


def test_cli_writes_outputs_and_resumes(tmp_path: Path, count_training) -> None:
    out = tmp_path / "grid"
    r = runner.invoke(app, [*TINY, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert len(count_training) == 4
    names = {p.name for p in out.iterdir()}
    assert {RESULTS_FILE, "cells.csv", "cells.json", "summary.md", "excess_m1.png"} <= names
    assert (out / "excess_m1.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader((out / "cells.csv").open()))
    assert [(int(c["d"]), int(c["n_users"])) for c in rows] == [
        (4, 200),
        (4, 300),
        (8, 200),
        (8, 300),
    ]
    for c in rows:  # excess is computed from the same runs as the RMSE columns
        assert float(c["excess_test_mean"]) == pytest.approx(
            float(c["mlp_test_mean"]) - float(c["dot_test_mean"])
        )
    summary = (out / "summary.md").read_text()
    assert "## Verdict" in summary and "first_layer_mult = 1" in summary
    assert "4 runs computed, 0 resumed" in r.output
    first = (out / RESULTS_FILE).read_bytes()

    r = runner.invoke(app, [*TINY, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert len(count_training) == 4  # nothing retrained
    assert "0 runs computed, 4 resumed" in r.output
    assert (out / RESULTS_FILE).read_bytes() == first

    r = runner.invoke(app, [*TINY[:2], "4,8,16", *TINY[3:], "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert count_training[4:] == [(16, 1), (16, 1)]  # only the new cells
    assert len(json.loads((out / RESULTS_FILE).read_text())["runs"]) == 6


def test_cli_rejects_other_settings_and_bad_lists(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    assert runner.invoke(app, [*TINY[:2], "4", *TINY[3:], "--out", str(out)]).exit_code == 0
    r = runner.invoke(app, [*TINY[:2], "4", *TINY[3:-4], "--epochs", "2", "--out", str(out)])
    assert isinstance(r.exception, ConfigError) and "epochs=1 (now 2)" in str(r.exception)
    r = runner.invoke(app, [*TINY[:2], "4,x", *TINY[3:], "--out", str(out)])
    assert isinstance(r.exception, ConfigError) and "--dims" in str(r.exception)
    r = runner.invoke(app, [*TINY[:4], "50", *TINY[5:], "--out", str(out)])
    assert isinstance(r.exception, ConfigError) and ">= 100" in str(r.exception)


def test_interrupted_grid_resumes_to_the_same_numbers(tmp_path: Path) -> None:
    full = run_grid(SPEC, tmp_path / "full")

    def stop_after_first(key, record, cached):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_grid(SPEC, tmp_path / "cut", on_run=stop_after_first)
    saved = json.loads((tmp_path / "cut" / RESULTS_FILE).read_text())["runs"]
    assert len(saved) == 1
    resumed = run_grid(SPEC, tmp_path / "cut")
    strip = [{k: v for k, v in r.items() if "seconds" not in k} for r in full]
    assert [{k: v for k, v in r.items() if "seconds" not in k} for r in resumed] == strip
    # Both MLP sizes of one (d, n_users, repeat) share the data, hence the baselines.
    assert full[0]["dot_test"] == full[1]["dot_test"] and full[0]["mlp_test"] != full[1]["mlp_test"]


def test_corrupt_results_file_is_an_artifact_error(tmp_path: Path) -> None:
    (tmp_path / RESULTS_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable results file"):
        run_grid(SPEC, tmp_path)

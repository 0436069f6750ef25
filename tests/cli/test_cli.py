"""The command-line contract: train/evaluate/data, JSON output, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dotrec.cli import app

runner = CliRunner()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point (so the error handling of ``main`` is exercised)."""
    return subprocess.run(
        [sys.executable, "-c", "from dotrec.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_evaluate_json_contract(tmp_path: Path) -> None:
    out = tmp_path / "mf"
    r = runner.invoke(
        app,
        [
            "train",
            "mf",
            "--dataset",
            "synthetic",
            "--embedding-dim",
            "8",
            "--epochs",
            "3",
            "--learning-rate",
            "0.01",
            "--threads",
            "1",
            "--out",
            str(out),
            "--protocol",
            "none",
        ],
    )
    assert r.exit_code == 0, r.output
    assert {"model.json", "arrays.npz", "seen.npz"} <= {p.name for p in out.iterdir()}
    r = runner.invoke(
        app,
        ["evaluate", str(out), "--dataset", "synthetic", "--protocol", "both", "--json", "-k", "5"],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert set(res) == {"sampled", "full"}
    assert {"hr@5", "ndcg@5", "users", "ties"} <= set(res["sampled"])
    assert {"hr@5", "ndcg@5", "mrr", "users"} <= set(res["full"])
    assert res["sampled"]["users"] == 2000
    meta = json.loads((out / "model.json").read_text())
    assert meta["model"] == "mf" and meta["config"]["embedding_dim"] == 8
    assert len(meta["arrays"]["sha256"]) == 64 and meta["dataset"]["name"] == "synthetic"


def test_arrays_are_plain_dot_product_factors(tmp_path: Path) -> None:
    import numpy as np

    out = tmp_path / "mf"
    runner.invoke(
        app,
        [
            "train",
            "mf",
            "--epochs",
            "1",
            "--embedding-dim",
            "4",
            "--threads",
            "1",
            "--out",
            str(out),
            "--protocol",
            "none",
        ],
    )
    a = np.load(out / "arrays.npz", allow_pickle=False)
    from dotrec import load_model

    m = load_model(out)
    u, i = np.array([0, 5]), np.array([3, 9])
    manual = (
        a["global_bias"]
        + a["user_bias"][u]
        + a["item_bias"][i]
        + (a["user_factors"][u] * a["item_factors"][i]).sum(1)
    )
    np.testing.assert_allclose(m.score(u, i), manual, rtol=1e-6)


@pytest.mark.parametrize(
    "content,needle",
    [
        ("1\t2\t3\t4\n1\tx\t3\t4\n", "u.data:2: item id 'x' is not an integer"),
        ("", "u.data: empty file"),
        ("1\t2\t3\n", "u.data:1: 3 columns, expected 4"),
        ("1\t99999999999\t3\t4\n", "u.data:1: item id 99999999999 is out of range"),
    ],
)
def test_bad_input_is_one_line_without_traceback(tmp_path: Path, content: str, needle: str) -> None:
    f = tmp_path / "u.data"
    f.write_text(content)
    r = run("train", "popularity", "--dataset", str(f))
    assert r.returncode != 0
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) <= 3
    rv = run("--verbose", "train", "popularity", "--dataset", str(f))
    assert "Traceback" in rv.stderr


def test_negatives_mismatch_and_missing_dataset(tmp_path: Path) -> None:
    (tmp_path / "t.train.rating").write_text("0\t0\t1\t1\n1\t1\t1\t1\n")
    (tmp_path / "t.test.rating").write_text("0\t1\t1\t2\n1\t0\t1\t2\n")
    (tmp_path / "t.test.negative").write_text("(1,0)\t2\n(0,1)\t2\n")
    r = run("train", "popularity", "--dataset", str(tmp_path / "t"))
    assert r.returncode != 0 and "t.test.negative:1" in r.stderr
    assert "does not match its test file" in r.stderr
    r = run("data", "info", "ml-1m", "--data-dir", str(tmp_path))
    assert r.returncode != 0 and "dotrec data download ml-1m" in r.stderr


def test_flag_that_does_not_apply_is_rejected() -> None:
    r = runner.invoke(app, ["train", "mf", "--unobserved-weight", "0.3", "--epochs", "1"])
    assert r.exit_code != 0
    assert "--unobserved-weight does not apply to model 'mf'" in str(r.exception)


def test_bad_hyperparameter_is_a_clear_error() -> None:
    r = run("train", "mf", "--learning-rate", "-1")
    assert r.returncode != 0 and "learning_rate must be > 0" in r.stderr


def test_corrupt_artifact_is_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "m"
    runner.invoke(app, ["train", "popularity", "--out", str(out), "--protocol", "none"])
    (out / "arrays.npz").write_bytes((out / "arrays.npz").read_bytes()[:-10])
    r = run("evaluate", str(out), "--dataset", "synthetic")
    assert r.returncode != 0 and "sha256" in r.stderr and "Traceback" not in r.stderr


def test_data_info_json_and_list(data_dir: Path) -> None:
    r = runner.invoke(app, ["data", "info", "ml-1m", "--data-dir", str(data_dir), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert (info["users"], info["items"], info["interactions"]) == (6040, 3706, 1000209)
    assert info["test_users"] == 6040 and info["eval_negatives"] == 99
    r = runner.invoke(app, ["data", "list", "--data-dir", str(data_dir)])
    assert r.exit_code == 0 and "ml-1m" in r.stdout and "pinterest-20" in r.stdout


def _commands(group, prefix=""):  # type: ignore[no-untyped-def]
    for name, sub in getattr(group, "commands", {}).items():
        yield prefix + name, sub
        yield from _commands(sub, prefix + name + " ")


def test_every_subcommand_has_help_and_docs() -> None:
    import typer.main

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    docs = readme + "".join(
        p.read_text() for p in (Path(__file__).resolve().parents[2] / "docs").rglob("*.md")
    )
    for name, cmd in _commands(typer.main.get_command(app)):
        assert (cmd.help or "").strip(), f"`dotrec {name}` has no help text"
        assert f"dotrec {name}" in docs, f"`dotrec {name}` is not documented"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate"], "Missing argument 'model_dir'. (see 'dotrec evaluate --help')"),
        (["train"], "name the MODEL to train (or pass --config FILE)"),
        (["train", "mf", "--bogus"], "No such option: --bogus"),
        (["nosuch"], "No such command 'nosuch'"),
        (["train", "mf", "--epochs", "x"], "Invalid value for '--epochs'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv: list[str], message: str) -> None:
    r = run(*argv)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    # With -v the traceback is shown.
    r = run("-v", *argv)
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_version() -> None:
    from dotrec._version import __version__

    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"dotrec {__version__}"


def test_train_out_never_replaces_what_dotrec_did_not_write(tmp_path: Path) -> None:
    notes = tmp_path / "mine"
    notes.mkdir()
    (notes / "notes.txt").write_text("keep me")
    for extra in ([], ["--force"]):
        r = run("train", "popularity", "--out", str(notes), "--protocol", "none", *extra)
        assert r.returncode == 2 and "is not a dotrec model directory" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert [p.name for p in notes.iterdir()] == ["notes.txt"]
    assert (notes / "notes.txt").read_text() == "keep me"
    model = tmp_path / "model"
    assert run("train", "popularity", "--out", str(model), "--protocol", "none").returncode == 0
    r = run("train", "popularity", "--out", str(model), "--protocol", "none")
    assert r.returncode == 2 and "pass --force" in r.stderr
    assert (
        run("train", "popularity", "--out", str(model), "--protocol", "none", "--force").returncode
        == 0
    )
    # The library refuses too: a model saved over a foreign directory leaves it as it was.
    from dotrec.errors import ArtifactError
    from dotrec.models import load_model

    with pytest.raises(ArtifactError, match="left untouched"):
        load_model(model).save(notes)
    assert [p.name for p in notes.iterdir()] == ["notes.txt"]


def test_piped_train_writes_progress_lines_while_it_runs() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from dotrec.cli import main; main()",
            "train",
            "mf",
            "--epochs",
            "40",
            "--protocol",
            "none",
            "--threads",
            "1",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line.rstrip())
        if line.startswith("train mf 1/40 loss"):
            assert proc.poll() is None  # written during training, not at the end
    proc.wait(timeout=300)
    assert proc.returncode == 0
    epochs = [ln for ln in lines if ln.startswith("train mf ") and " loss " in ln]
    assert [ln.split()[2] for ln in epochs[:40]] == [f"{e}/40" for e in range(1, 41)]


def test_evaluate_defaults_to_the_models_dataset_and_refuses_other_data(tmp_path: Path) -> None:
    out = tmp_path / "m"
    args = ["--epochs", "2", "--threads", "1", "--out", str(out), "--protocol", "none"]
    assert runner.invoke(app, ["train", "mf", "--seed", "3", *args]).exit_code == 0
    # No --dataset: the model's own (synthetic).
    r = runner.invoke(app, ["evaluate", str(out), "--protocol", "sampled", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["sampled"]
    assert res["protocol_version"] == 1 and 0.0 < res["hr@10"] <= 1.0
    # Two NCF splits of the same sizes whose training pairs differ.
    for name, train in (("a", "0\t0\t1\t1\n1\t1\t1\t1\n"), ("b", "0\t1\t1\t1\n1\t0\t1\t1\n")):
        (tmp_path / f"{name}.train.rating").write_text(train + "0\t2\t1\t1\n")
        (tmp_path / f"{name}.test.rating").write_text("0\t3\t1\t2\n1\t2\t1\t2\n")
        (tmp_path / f"{name}.test.negative").write_text("(0,3)\t1\n(1,2)\t3\n")
    a = tmp_path / "model-a"
    r = run(
        "train",
        "popularity",
        "--dataset",
        str(tmp_path / "a"),
        "--out",
        str(a),
        "--protocol",
        "none",
    )
    assert r.returncode == 0, r.stderr
    r = run("evaluate", str(a), "--dataset", str(tmp_path / "b"), "--protocol", "sampled")
    assert r.returncode == 2 and "trained on other interactions" in r.stderr, r.stderr
    r = run(
        "evaluate",
        str(a),
        "--dataset",
        str(tmp_path / "b"),
        "--protocol",
        "sampled",
        "--other-data",
    )
    assert r.returncode == 0 and "warning:" in r.stderr


def test_small_cli_contracts(tmp_path: Path) -> None:
    # -k must be positive, on every command that takes it.
    for cmd in (["train", "mf"], ["evaluate", str(tmp_path)], ["recommend", str(tmp_path)]):
        r = run(*cmd, "-k", "0")
        assert r.returncode == 2 and "Invalid value for '-k'" in r.stderr, cmd
    # compare --threads applies to the models that take threads, not to popularity.
    r = runner.invoke(app, ["compare", "--models", "popularity,mf", "--threads", "1"])
    assert r.exit_code == 0, r.output
    # recommend --user A --user B answers both, in order (one JSON object per line).
    out = tmp_path / "pop"
    assert (
        runner.invoke(
            app, ["train", "popularity", "--out", str(out), "--protocol", "none"]
        ).exit_code
        == 0
    )
    r = run("recommend", str(out), "--user", "1", "--user", "2", "-k", "3", "--json")
    assert r.returncode == 0, r.stderr
    answers = [json.loads(line) for line in r.stdout.splitlines()]
    assert [a["user_id"] for a in answers] == ["1", "2"] and all(
        len(a["items"]) == 3 for a in answers
    )
    # data list tells a dataset with only some of its files from a complete one.
    (tmp_path / "d" / "pinterest-20").mkdir(parents=True)
    (tmp_path / "d" / "pinterest-20" / "pinterest-20.test.rating").write_text("0\t0\t1\t1\n")
    r = runner.invoke(
        app, ["data", "list", "--data-dir", str(tmp_path / "d")], env={"COLUMNS": "300"}
    )
    row = next(ln for ln in r.stdout.splitlines() if "pinterest-20 " in ln)
    assert "partly (missing pinterest-20.train.rating" in row and "| yes" not in row
    # data info takes --format like every command that reads a ratings file.
    f = tmp_path / "r.txt"
    rows = [(u, i) for u in range(1, 111) for i in (u, u % 110 + 1)]  # 110 users, 110 items
    f.write_text("".join(f"{u}\t{i}\t5\t{n}\n" for n, (u, i) in enumerate(rows)))
    r = runner.invoke(app, ["data", "info", str(f), "--format", "udata", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["users"] == 110


@pytest.mark.realdata
def test_data_info_of_a_file_split(data_dir: Path) -> None:
    r = CliRunner().invoke(app, ["data", "info", "gowalla", "--data-dir", str(data_dir), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert (info["users"], info["items"], info["train_interactions"]) == (29858, 40981, 810128)
    assert info["test_interactions"] == 217242 and info["test_users"] == 29858

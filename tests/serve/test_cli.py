"""``dotrec index build``, ``dotrec recommend``, ``dotrec serve``, ``dotrec bench serving``."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from dotrec.bench.serving import parse_sizes
from dotrec.cli import app
from dotrec.errors import ConfigError, DotrecError
from dotrec.models import load_model
from dotrec.recommend import Recommender
from dotrec.retrieval import load_index
from tests.conftest import require
from tests.retrieval.conftest import brute_force_recall

runner = CliRunner()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from dotrec.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_index_build_and_recommend(tmp_path: Path, mf_dir: Path) -> None:
    d = tmp_path / "mf"
    shutil.copytree(mf_dir, d)
    # nprobe 1 of 4 cells: an approximate index (measured recall@10 0.80; nprobe 4 is exact)
    r = runner.invoke(app, ["index", "build", str(d), "--kind", "ivf", "--nprobe", "1", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["kind"] == "ivf" and report["params"]["nprobe"] == 1
    assert (d / "index-ivf" / "index.faiss").is_file()
    # the CLI reports the index's real recall: a brute-force top-10 over the same sampled users
    model = load_model(d)
    index = load_index(d, "ivf", model)
    recall = brute_force_recall(model, index, report["recall_queries"])
    assert report["recall@10"] == pytest.approx(recall) and 0.7 <= recall < 0.95
    r = runner.invoke(
        app, ["recommend", str(d), "--user", "u4", "-k", "5", "--index", "ivf", "--json"]
    )
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    items, _ = Recommender.from_dir(d, "ivf").recommend("u4", 5)
    assert [x["item_id"] for x in body["items"]] == items.tolist()
    r = runner.invoke(app, ["recommend", str(d), "--user", "u4"])
    assert r.exit_code == 0 and "top 10 for user u4" in r.stdout
    r = runner.invoke(app, ["index", "build", str(d), "--kind", "ivfpq", "--rescore", "sq8"])
    assert r.exit_code == 0, r.output
    assert load_index(d, "ivfpq", model).params()["rescore"] == "sq8"
    rec = Recommender.from_dir(d, "ivfpq")
    items, scores = rec.recommend("u4", 5)
    assert len(items) == 5 and np.all(np.diff(scores) <= 0)
    u, idx = rec.user_index("u4"), rec.items.indices(items.tolist())
    assert rec.seen is not None and not np.isin(idx, rec.seen.items_of(u)).any()
    # the codes' scores are the model's own within 1% of the user's score range
    exact = model.score(np.full(len(idx), u), idx)
    spread = float(np.ptp(model.score_all([u])))
    np.testing.assert_allclose(scores, exact, atol=0.01 * spread)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["recommend", "{mf}", "--user", "nobody"], "unknown user id 'nobody'"),
        (["recommend", "{mf}", "--users", "all"], "--users writes a file"),
        (["recommend", "{mf}", "--user", "u1", "--index", "hnsw"], "no hnsw index"),
        (["index", "build", "{mf}", "--kind", "exact", "--nprobe", "3"], "--nprobe does not apply"),
        (
            ["index", "build", "{mf}", "--kind", "ivf", "--rescore", "sq8"],
            "--rescore does not apply",
        ),
        (["serve", "{missing}"], "no such model directory"),
    ],
)
def test_cli_errors_are_library_errors(
    tmp_path: Path, mf_dir: Path, args: list[str], needle: str
) -> None:
    args = [a.format(mf=mf_dir, missing=tmp_path / "missing") for a in args]
    r = runner.invoke(app, args)
    assert isinstance(r.exception, DotrecError) and needle in str(r.exception), r.output


def test_cli_error_is_one_line_without_traceback(mf_dir: Path) -> None:
    r = run("recommend", str(mf_dir), "--user", "nobody")
    assert r.returncode != 0 and "unknown user id 'nobody'" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_parse_sizes() -> None:
    assert parse_sizes("1e4, 1e5,2000") == (10_000, 100_000, 2000)
    for bad in ("", "1e4,x", "1.5", "0"):
        with pytest.raises(ConfigError, match="--sizes"):
            parse_sizes(bad)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("mmap", [[], ["--mmap"]], ids=["read", "mmap"])
def test_serve_with_workers_starts_answers_and_stops(mf_dir: Path, mmap: list[str]) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from dotrec.cli import main; main()",
            "serve",
            str(mf_dir),
            "--port",
            str(port),
            "--workers",
            "2",
            *mmap,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/users/u1/recommendations?k=3", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.3)
        assert r.status_code == 200, r.text
        items, _ = Recommender.from_dir(mf_dir).recommend("u1", 3)
        assert [x["item_id"] for x in r.json()["items"]] == items.tolist()
        assert httpx.get(f"http://127.0.0.1:{port}/users/x/recommendations").status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_serve_extra_brings_the_fast_event_loop_and_parser() -> None:
    # uvicorn's "auto" settings use them when they are importable (pyproject's serve extra).
    require("uvloop")
    require("httptools")
    from uvicorn.config import Config

    config = Config(app=lambda scope, receive, send: None)
    config.load()
    assert "httptools" in config.http_protocol_class.__module__

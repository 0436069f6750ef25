"""Fold-in of a new user: Python, CLI and HTTP give the same top-k; bad lists are 422s."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dotrec.cli import app as cli
from dotrec.errors import ConfigError
from dotrec.models import GMF, load_seen
from dotrec.recommend import Recommender
from dotrec.retrieval import build_index, save_index
from tests.conftest import require
from tests.retrieval.conftest import make_model_dir, string_id_interactions

require("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from dotrec.serve import create_app  # noqa: E402

GIVEN = ["i3", "i17", "i42", "i99", "i150"]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fold_in")
    mf = make_model_dir(root / "mf")
    hnsw = root / "mf_hnsw"
    shutil.copytree(mf, hnsw)
    from dotrec.models import load_model

    save_index(build_index(load_model(hnsw), "hnsw", recall_queries=50), hnsw)
    out = {"mf": mf, "mf_hnsw": hnsw}
    if require("torch"):
        data = string_id_interactions()
        GMF(factor=8, epochs=2, threads=1).fit(data).save(root / "gmf", train=data)
        out["gmf"] = root / "gmf"
    return out


@pytest.mark.parametrize(("name", "index"), [("mf", None), ("mf_hnsw", "hnsw"), ("gmf", None)])
def test_python_cli_and_http_give_the_same_top_k(
    model_dirs: dict[str, Path], name: str, index: str | None
) -> None:
    d = model_dirs[name]
    rec = Recommender.from_dir(d, index)
    items, scores, unknown = rec.recommend_for_items([*GIVEN, "no-such-item"], 10)
    assert unknown == ["no-such-item"] and len(items) == 10
    assert not set(GIVEN) & set(items.tolist())  # the given items are left out
    # The answer is the one the folded-in row gives over the whole catalog.
    seen = load_seen(d)
    assert seen is not None
    known = seen.items.indices(GIVEN)
    full = rec.model.score_rows(rec.model.fold_in([known]))[0]
    full[known] = -float("inf")
    if index is None:
        assert seen.items.external(full.argsort()[::-1][:10]).tolist() == items.tolist()

    args = ["recommend", str(d), "--items", ",".join([*GIVEN, "no-such-item"]), "--json"]
    r = CliRunner().invoke(cli, args + (["--index", index] if index else []))
    assert r.exit_code == 0, r.output
    line = json.loads(r.stdout.strip().splitlines()[-1])
    assert [x["item_id"] for x in line["items"]] == items.tolist()
    assert line["unknown_items"] == ["no-such-item"]

    client = TestClient(create_app(d, index))
    resp = client.post("/recommendations", json={"items": [*GIVEN, "no-such-item"], "k": 10})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [x["item_id"] for x in body["items"]] == items.tolist()
    assert [x["score"] for x in body["items"]] == pytest.approx(scores.tolist(), abs=1e-5)
    assert body["unknown_items"] == ["no-such-item"]


def test_empty_or_unknown_lists_are_422(model_dirs: dict[str, Path]) -> None:
    client = TestClient(create_app(model_dirs["mf"]))
    for payload in ({"items": []}, {"items": ["nope", "also-not"]}, {"items": ["i3"], "k": 0}):
        resp = client.post("/recommendations", json=payload)
        assert resp.status_code == 422, (payload, resp.text)
    with pytest.raises(ConfigError, match="unknown: nope"):
        Recommender.from_dir(model_dirs["mf"]).recommend_for_items(["nope"], 5)
    r = CliRunner().invoke(cli, ["recommend", str(model_dirs["mf"]), "--items", "nope"])
    assert isinstance(r.exception, ConfigError)  # main() prints it as one line, exit 2

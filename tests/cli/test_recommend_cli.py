"""Batch recommendations, similar items and embedding export from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dotrec.cli import app
from dotrec.models import load_model, load_seen
from dotrec.recommend import Recommender
from tests.conftest import require

runner = CliRunner()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    out = {}
    for name, extra in (("mf", ["--embedding-dim", "8"]), ("gmf", ["--factor", "8"])):
        if name == "gmf":
            require("torch")
        out[name] = root / name
        args = [
            "train",
            name,
            *extra,
            "--epochs",
            "2",
            "--threads",
            "1",
            "--protocol",
            "none",
            "--out",
            str(out[name]),
        ]
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
    return out


@pytest.mark.parametrize("name", ["mf", "gmf"])
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_batch_recommend_equals_one_at_a_time(
    models: dict[str, Path], name: str, suffix: str, tmp_path: Path
) -> None:
    out = tmp_path / f"recs{suffix}"
    r = runner.invoke(
        app, ["recommend", str(models[name]), "--users", "all", "-k", "5", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    table = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    rec = Recommender.from_dir(models[name])
    assert table.user_id.nunique() == rec.model.n_users and list(table.columns) == [
        "user_id",
        "rank",
        "item_id",
        "score",
    ]
    for user in rng_users(rec.model.n_users):
        items, scores = rec.recommend(int(user), 5)
        rows = table[table.user_id == user].sort_values("rank")
        assert rows["item_id"].tolist() == items.tolist()
        np.testing.assert_allclose(rows.score.to_numpy(), scores, rtol=1e-5, atol=1e-6)
    r = runner.invoke(app, ["recommend", str(models[name]), "--users", "all", "--out", str(out)])
    assert r.exit_code != 0 and "pass --force" in str(r.exception)


def rng_users(n: int) -> np.ndarray:
    return np.random.default_rng(0).choice(n, size=25, replace=False)


def test_users_file_with_an_unknown_id_names_its_line(
    models: dict[str, Path], tmp_path: Path
) -> None:
    f = tmp_path / "users.txt"
    f.write_text("1\n2\n\nnobody\n")
    r = runner.invoke(
        app, ["recommend", str(models["mf"]), "--users", str(f), "--out", str(tmp_path / "r.csv")]
    )
    assert r.exit_code != 0 and "users.txt:4" in str(r.exception) and "nobody" in str(r.exception)
    assert not (tmp_path / "r.csv").exists()


def test_similar_and_export(models: dict[str, Path], tmp_path: Path) -> None:
    rec = Recommender.from_dir(models["mf"])
    items, sims = rec.similar_items(3, 4)
    r = runner.invoke(app, ["similar", str(models["mf"]), "--item", "3", "-k", "4", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)["items"]
    assert [g["item_id"] for g in got] == items.tolist()
    np.testing.assert_allclose([g["cosine"] for g in got], sims, rtol=1e-6)
    r = runner.invoke(app, ["export", str(models["mf"]), "--out", str(tmp_path / "emb")])
    assert r.exit_code == 0, r.output
    model, seen = load_model(models["mf"]), load_seen(models["mf"])
    assert seen is not None
    users = pd.read_parquet(tmp_path / "emb" / "users.parquet")
    items_t = pd.read_parquet(tmp_path / "emb" / "items.parquet")
    # --embedding-dim 8 counts the bias: 7 factor columns, and the files give the model's scores
    fu, fi = users[[f"f{j}" for j in range(7)]].to_numpy(), items_t[[f"f{j}" for j in range(7)]]
    np.testing.assert_array_equal(fu, model.user_factors)
    np.testing.assert_array_equal(items_t.bias.to_numpy(), model.item_bias)
    g_bias = json.loads((tmp_path / "emb" / "export.json").read_text())["global_bias"]
    scores = fu @ fi.to_numpy().T + users.bias.to_numpy()[:, None] + items_t.bias.to_numpy()
    np.testing.assert_allclose(
        scores + g_bias, model.score_all(np.arange(model.n_users)), atol=1e-5
    )
    assert users.user_id.tolist() == seen.users.external(np.arange(model.n_users)).tolist()
    r = runner.invoke(app, ["export", str(models["gmf"]), "--out", str(tmp_path / "g")])
    assert r.exit_code == 0, r.output
    g = pd.read_parquet(tmp_path / "g" / "items.parquet")
    np.testing.assert_array_equal(
        g[[f"gmf_{j}" for j in range(8)]].to_numpy(),
        load_model(models["gmf"]).weights["gmf.item_embedding"],
    )


@pytest.mark.parametrize("name", ["mf", "gmf"])
def test_mmap_gives_the_same_answers(models: dict[str, Path], name: str) -> None:
    def answers(*extra: str) -> list[str]:
        user = ["recommend", str(models[name]), "--user", "0", "--user", "5", "-k", "7"]
        out = [runner.invoke(app, [*user, "--json", *extra])]
        if name == "mf":
            item = ["similar", str(models[name]), "--item", "3", "-k", "4", "--json"]
            out.append(runner.invoke(app, [*item, *extra]))
        assert all(r.exit_code == 0 for r in out), [r.output for r in out]
        return [r.stdout for r in out]

    plain, mapped = answers(), answers("--mmap")
    assert mapped == plain and '"items": [{"item_id"' in plain[0]

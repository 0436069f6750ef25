"""Column mapping, the rating threshold and the iterated k-core, in Python and on the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dotrec.cli import app
from dotrec.data.filters import filter_interactions
from dotrec.data.interactions import Interactions
from dotrec.data.registry import DataOptions, load_dataset
from dotrec.errors import ConfigError, DataError

runner = CliRunner()


def test_k_core_is_iterated_until_stable() -> None:
    # Users a, b, c and items x, y, z. Item z has one interaction (by c): removing it leaves c
    # with one interaction, so c goes too, which leaves item w (only c's) with none.
    rows = [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "z"), ("c", "w"), ("c", "x")]
    data = Interactions.from_ids([u for u, _ in rows], [i for _, i in rows])
    out, report = filter_interactions(data, min_user_count=2, min_item_count=2)
    assert sorted(out.users.external(np.arange(out.n_users)).tolist()) == ["a", "b"]
    assert sorted(out.items.external(np.arange(out.n_items)).tolist()) == ["x", "y"]
    assert (len(out), report.users_removed, report.items_removed) == (4, 1, 2)
    assert report.rows_out_of_core == 3 and report.core_rounds == 2
    assert any("k-core" in line for line in report.lines())


def test_min_rating_keeps_exactly_the_ratings_at_or_above(data_dir: Path) -> None:
    raw = pd.read_csv(data_dir / "ml-latest-small" / "ratings.csv")
    split = load_dataset("ml-latest-small", data_dir, options=DataOptions(min_rating=4.0))
    kept = raw[raw.rating >= 4.0]
    assert split.train.n_interactions + split.n_test == len(kept)  # 48,580 of 100,836
    assert split.train.ratings is not None and split.train.ratings.min() >= 4.0
    assert split.train.n_users == kept.userId.nunique()
    assert split.train.n_items == kept.movieId.nunique()


def test_table_with_other_column_names_trains_from_the_cli(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 3000
    pairs = rng.choice(150 * 200, size=n, replace=False)  # distinct (member, sku) pairs
    df = pd.DataFrame(
        {
            "member": (pairs // 200).astype(str),
            "sku": "p" + pd.Series(pairs % 200).astype(str),
            "stars": rng.integers(1, 6, n),
            "when": np.arange(n),
        }
    )
    f = tmp_path / "orders.tsv"
    df.to_csv(f, sep="\t", index=False)
    out = tmp_path / "model"
    args = [
        "train",
        "mf",
        "--dataset",
        str(f),
        "--user-col",
        "member",
        "--item-col",
        "sku",
        "--rating-col",
        "stars",
        "--time-col",
        "when",
        "--min-rating",
        "3",
        "--min-user-count",
        "5",
        "--epochs",
        "2",
        "--threads",
        "1",
        "--out",
        str(out),
        "--protocol",
        "sampled",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "model.json").read_text())
    assert meta["dataset"]["name"] == "orders.tsv"
    r = runner.invoke(
        app,
        [
            "data",
            "info",
            str(f),
            "--user-col",
            "member",
            "--item-col",
            "sku",
            "--rating-col",
            "stars",
            "--min-rating",
            "3",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["interactions"] == int((df.stars >= 3).sum())
    r = runner.invoke(app, ["train", "mf", "--dataset", str(f), "--item-col", "sku"])
    assert isinstance(r.exception, ConfigError) and "--user-col and --item-col" in str(r.exception)


def test_filters_refuse_fixed_splits_and_data_without_ratings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fixed split"):
        load_dataset("synthetic", options=DataOptions(min_user_count=5))
    f = tmp_path / "t.csv"
    f.write_text("u,i\n1,2\n1,3\n2,3\n")
    with pytest.raises(DataError, match="needs ratings"):
        load_dataset(str(f), options=DataOptions(user_col="u", item_col="i", min_rating=3))

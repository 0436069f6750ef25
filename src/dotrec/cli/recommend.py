"""``dotrec recommend``, ``similar`` and ``export``: answers and embeddings of a saved model.

``recommend MODEL_DIR --user ID [--user ID ...]`` prints top-k items per user;
``--items A,B,C`` folds in a new user from the items it interacted with (no retraining);
``--users FILE|all --out FILE`` writes them for many users (batched) to Parquet or CSV.
``similar MODEL_DIR --item ID`` prints the items closest by cosine. ``export MODEL_DIR --out
DIR`` writes the user and item embeddings (and biases) with their raw ids as Parquet.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from dotrec.artifacts import atomic_write_bytes
from dotrec.cli._common import epoch_progress, print_table
from dotrec.cli.app import app, console, default_threads, k_option
from dotrec.errors import ConfigError, DataError, NotSupportedError
from dotrec.models import Model
from dotrec.models.base import DotProductModel
from dotrec.recommend import Recommender

_MMAP = typer.Option(
    False,
    "--mmap",
    help="Map the model's arrays from its file instead of reading them into memory (a catalog "
    "larger than memory is read from disk as searched).",
)


@app.command("recommend")
def recommend_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory written by `dotrec train`."),
    users: list[str] | None = typer.Option(
        None, "--user", "-u", help="Raw user id (repeat the flag for several users)."
    ),
    users_from: str | None = typer.Option(
        None, "--users", help="A file of user ids (one per line), or 'all'; needs --out."
    ),
    items_given: str | None = typer.Option(
        None,
        "--items",
        help="A new user's item ids, comma-separated: fold it in and recommend for it.",
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="With --users: the Parquet (.parquet) or CSV file to write."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file."),
    k: int = k_option("Number of items."),
    index: str | None = typer.Option(
        None, "--index", help="Saved index to search: exact, hnsw, ivf or ivfpq (default exact)."
    ),
    include_seen: bool = typer.Option(
        False, "--include-seen", help="Also return the user's training items."
    ),
    threads: int | None = typer.Option(None, help="Search threads (default: up to 2)."),
    mmap: bool = _MMAP,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Recommend the top K items for each user, leaving out the items seen in training.

    A user the model has not seen: --items A,B,C (folded in from those items, which are left
    out of its answer; unknown ids are reported and ignored). With --json, one JSON object per
    user, one per line.
    """
    if sum((users_from is not None, bool(users), items_given is not None)) != 1:
        raise ConfigError("pass one of --user ID (one or more), --users FILE|all, --items A,B,C")
    if users_from is not None and out is None:
        raise ConfigError("--users writes a file: pass --out FILE.parquet or FILE.csv")
    if out is not None and out.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"--out {out}: the name must end in .parquet or .csv")
    if out is not None and out.exists() and not force:
        raise ConfigError(f"--out {out} exists; pass --force to replace it")
    rec = Recommender.from_dir(model_dir, index, threads=threads or default_threads(), mmap=mmap)
    if items_given is not None:
        given = [i.strip() for i in items_given.split(",") if i.strip()]
        items, scores, unknown = rec.recommend_for_items(given, k)
        if unknown and not as_json:
            console.print(f"[yellow]ignored unknown item ids:[/] {', '.join(unknown)}")
        head: dict[str, object] = {"items_given": given, "unknown_items": unknown}
        _show(rec, head, items, scores, k, as_json, f"a new user ({len(given)} items)")
        return
    if users_from is None:
        for user in users or []:
            items, scores = rec.recommend(user, k, exclude_seen=not include_seen)
            _show(
                rec,
                {"user_id": user, "exclude_seen": not include_seen},
                items,
                scores,
                k,
                as_json,
                f"user {user}",
            )
        return
    assert out is not None
    indices = _user_indices(rec, users_from)
    frame = _batch(rec, indices, k, not include_seen)
    _write_table(frame, out)
    console.print(f"wrote {len(frame)} rows ({len(indices)} users, top {k}) to {out}")


#: Users per batched search (bounds the score matrix of learned-similarity models).
BATCH = 1024


def _user_indices(rec: Recommender, source: str) -> np.ndarray:
    """All users, or those listed in a file (one id per line; an unknown id names its line)."""
    if source == "all":
        return np.arange(rec.model.n_users)
    path = Path(source)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DataError(f"cannot read ({e.strerror})", path) from None
    out = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            u = rec.users.index(line.strip())
            if u is None:
                raise DataError(f"unknown user id {line.strip()!r}", path, n)
            out.append(u)
    if not out:
        raise DataError("no user ids", path)
    return np.array(out, dtype=np.int64)


def _batch(rec: Recommender, users: np.ndarray, k: int, exclude_seen: bool) -> pd.DataFrame:
    """Long format: user_id, rank (1-based), item_id, score; same answers as one at a time."""
    parts = []
    with epoch_progress() as progress:
        task = progress.add_task("recommend", total=len(users), info="users")
        for s in range(0, len(users), BATCH):
            u = users[s : s + BATCH]
            idx, scores = rec.top_indices(u, k, exclude_seen)
            row, col = np.nonzero(idx >= 0)
            parts.append(
                pd.DataFrame(
                    {
                        "user_id": rec.users.external(u[row]),
                        "rank": (col + 1).astype(np.int32),
                        "item_id": rec.items.external(idx[row, col]),
                        "score": scores[row, col],
                    }
                )
            )
            progress.update(task, completed=s + len(u))
    return pd.concat(parts, ignore_index=True)


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write Parquet or CSV (by suffix) atomically: a failed write leaves the old file."""
    buf = io.BytesIO()
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(buf, index=False)
    else:
        frame.to_csv(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def _show(
    rec: Recommender,
    head: dict[str, object],
    items: np.ndarray,
    scores: np.ndarray,
    k: int,
    as_json: bool,
    who: str,
) -> None:
    """Print one answer: a JSON line (``head`` fields first) or a table."""
    if as_json:
        answer = [
            {"item_id": i, "score": float(s)} for i, s in zip(items.tolist(), scores.tolist())
        ]
        console.out(json.dumps({**head, "k": k, "items": answer}))
        return
    how = "score_all" if rec.index is None else rec.index.kind
    _print_ranked(f"top {k} for {who} ({rec.model.name}, {how})", items, scores, "score")


def _print_ranked(title: str, items: np.ndarray, values: np.ndarray, column: str) -> None:
    """A table of ranked items: rank, item_id and ``column`` (a score or a cosine)."""
    t = Table(title=title)
    t.add_column("rank", justify="right")
    t.add_column("item_id")
    t.add_column(column, justify="right")
    for r, (i, v) in enumerate(zip(items.tolist(), values.tolist()), 1):
        t.add_row(str(r), str(i), f"{v:.4f}")
    print_table(t)


@app.command("similar")
def similar_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory written by `dotrec train`."),
    item: str = typer.Option(..., "--item", "-i", help="Raw item id."),
    k: int = k_option("Number of items."),
    mmap: bool = _MMAP,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The K items closest to an item by the cosine of their embeddings."""
    rec = Recommender.from_dir(model_dir, mmap=mmap)
    items, sims = rec.similar_items(item, k)
    if as_json:
        console.out(
            json.dumps(
                {
                    "item_id": item,
                    "k": k,
                    "items": [
                        {"item_id": i, "cosine": float(c)}
                        for i, c in zip(items.tolist(), sims.tolist())
                    ],
                }
            )
        )
        return
    _print_ranked(
        f"{k} items most similar to {item} ({rec.model.name}, cosine)", items, sims, "cosine"
    )


@app.command("export")
def export_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory written by `dotrec train`."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for users.parquet, items.parquet."),
    force: bool = typer.Option(False, "--force", help="Replace existing files there."),
) -> None:
    """Write the user and item embeddings (and biases) with their raw ids as Parquet.

    Dot-product models: columns ``user_id`` (``item_id``), ``f0 ..`` and ``bias``; export.json
    holds the global bias, so that score = f_u . f_i + bias_u + bias_i + global_bias.
    GMF/MLP/NeuMF: one column group per embedding table (``gmf_0 ..``, ``mlp_0 ..``); their
    scores need the network, which stays in the model directory.
    """
    rec = Recommender.from_dir(model_dir)
    tables = embedding_tables(rec.model)
    paths = [out / f"{side}s.parquet" for side in ("user", "item")] + [out / "export.json"]
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise ConfigError(f"{existing[0]} exists; pass --force to replace it")
    for side, path in zip(("user", "item"), paths):
        ids = (rec.users if side == "user" else rec.items).external(
            np.arange(rec.model.n_users if side == "user" else rec.model.n_items)
        )
        frame = pd.DataFrame({f"{side}_id": ids})
        for prefix, array in tables[side]:
            cols = array.reshape(len(ids), -1)
            names = ["bias"] if prefix == "bias" else [f"{prefix}{j}" for j in range(cols.shape[1])]
            frame = pd.concat([frame, pd.DataFrame(cols, columns=names)], axis=1)
        _write_table(frame, path)
    meta: dict[str, object] = {"model": rec.model.name, "model_dir": str(model_dir)}
    if isinstance(rec.model, DotProductModel):
        meta["global_bias"] = float(rec.model.global_bias)
        meta["score"] = "sum(f_user * f_item) + user bias + item bias + global_bias"
    else:
        meta["score"] = "needs the model's network (the embeddings alone do not define it)"
    atomic_write_bytes(paths[2], (json.dumps(meta, indent=2) + "\n").encode())
    console.print(f"wrote {paths[0]}, {paths[1]} and {paths[2]}")


def embedding_tables(model: Model) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Per side, (column prefix, array) of a model's user or item embeddings and biases."""
    if isinstance(model, DotProductModel):
        return {
            "user": [("f", model.user_factors), ("bias", model.user_bias)],
            "item": [("f", model.item_factors), ("bias", model.item_bias)],
        }
    weights: dict[str, np.ndarray] = getattr(model, "weights", {})
    out: dict[str, list[tuple[str, np.ndarray]]] = {"user": [], "item": []}
    for branch in ("gmf", "mlp"):
        for side in ("user", "item"):
            name = f"{branch}.{side}_embedding"
            if name in weights:
                out[side].append((f"{branch}_", weights[name]))
    if not out["user"]:
        raise NotSupportedError(f"model {model.name!r} has no user and item embeddings")
    return out

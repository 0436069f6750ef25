"""``dotrec recommend MODEL_DIR --user ID [--user ID ...] -k 10``: top-k items per user."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from dotrec.cli.app import app, console, default_threads, k_option
from dotrec.recommend import Recommender


@app.command("recommend")
def recommend_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory written by `dotrec train`."),
    users: list[str] = typer.Option(
        ..., "--user", "-u", help="Raw user id (repeat the flag for several users)."
    ),
    k: int = k_option("Number of items."),
    index: str | None = typer.Option(
        None, "--index", help="Saved index to search: exact, hnsw or ivf (default exact)."
    ),
    include_seen: bool = typer.Option(
        False, "--include-seen", help="Also return the user's training items."
    ),
    threads: int | None = typer.Option(None, help="Search threads (default: up to 2)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Recommend the top K items for each user, leaving out the items seen in training.

    With --json, one JSON object per user, one per line.
    """
    rec = Recommender.from_dir(model_dir, index, threads=threads or default_threads())
    for user in users:
        _show(rec, user, k, include_seen, as_json)


def _show(rec: Recommender, user: str, k: int, include_seen: bool, as_json: bool) -> None:
    items, scores = rec.recommend(user, k, exclude_seen=not include_seen)
    if as_json:
        console.out(
            json.dumps(
                {
                    "user_id": user,
                    "k": k,
                    "exclude_seen": not include_seen,
                    "items": [
                        {"item_id": i, "score": float(s)}
                        for i, s in zip(items.tolist(), scores.tolist())
                    ],
                }
            )
        )
        return
    t = Table(
        title=f"top {k} for user {user} ({rec.model.name}, "
        f"{'score_all' if rec.index is None else rec.index.kind})"
    )
    t.add_column("rank", justify="right")
    t.add_column("item_id")
    t.add_column("score", justify="right")
    for r, (i, s) in enumerate(zip(items.tolist(), scores.tolist()), 1):
        t.add_row(str(r), str(i), f"{s:.4f}")
    console.print(t)

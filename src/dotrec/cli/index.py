"""``dotrec index build MODEL_DIR --kind exact|hnsw|ivf|ivfpq``: build and save an item index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from dotrec.cli.app import app, console, default_threads, err_console
from dotrec.errors import ConfigError
from dotrec.models import load_model
from dotrec.retrieval import build_index, save_index

index_app = typer.Typer(
    help="Build item indexes (MIPS) for dot-product models.", no_args_is_help=True
)
app.add_typer(index_app, name="index")


@index_app.command("build")
def build_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory written by `dotrec train`."),
    kind: str = typer.Option(..., "--kind", help="Index kind: exact, hnsw, ivf or ivfpq."),
    m: int | None = typer.Option(
        None,
        "--m",
        help="HNSW graph degree M (default 32); IVF-PQ bytes per item (default (d + 2) / 2).",
    ),
    ef_construction: int | None = typer.Option(None, help="HNSW efConstruction (default 100)."),
    ef_search: int | None = typer.Option(None, help="HNSW efSearch (default 256)."),
    nlist: int | None = typer.Option(None, help="IVF cells (default 4 sqrt(n_items))."),
    nprobe: int | None = typer.Option(
        None, help="IVF cells probed per query (default max(min(nlist, 8), nlist // 64))."
    ),
    refine: int | None = typer.Option(
        None, help="IVF-PQ: candidates re-scored per result (default 10)."
    ),
    rescore: str | None = typer.Option(
        None,
        help="IVF-PQ: re-score from the item vectors (exact, the default) or from 8-bit codes "
        "held in memory (sq8: for catalogs whose vectors do not fit in memory).",
    ),
    quantizer: str | None = typer.Option(
        None, help="IVF-PQ cell lookup: auto, flat or hnsw (default auto)."
    ),
    metric: str | None = typer.Option(
        None, help="l2 (MIPS-to-L2 transform, the default) or ip (inner product)."
    ),
    seed: int = typer.Option(0, help="Seed of the build and of the recall sample."),
    threads: int | None = typer.Option(None, help="Build threads (default: up to 2)."),
    as_json: bool = typer.Option(False, "--json", help="Print the build report as JSON."),
) -> None:
    """Build a KIND index over the model's item vectors, report recall@10, save it beside."""
    options = {
        "m": m,
        "ef_construction": ef_construction,
        "ef_search": ef_search,
        "nlist": nlist,
        "nprobe": nprobe,
        "metric": metric,
        "refine": refine,
        "rescore": rescore,
        "quantizer": quantizer,
    }
    allowed = {
        "exact": set(),
        "hnsw": {"m", "ef_construction", "ef_search", "metric"},
        "ivf": {"nlist", "nprobe", "metric"},
        "ivfpq": {"nlist", "m", "nprobe", "refine", "rescore", "quantizer"},
    }.get(kind, set(options))
    given: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    foreign = sorted(set(given) - allowed)
    if foreign:
        flags = ", ".join("--" + f.replace("_", "-") for f in foreign)
        raise ConfigError(f"{flags} does not apply to a {kind!r} index")
    model = load_model(model_dir)
    with err_console.status(f"building {kind} index over {model.n_items} items ..."):
        index = build_index(model, kind, threads=threads or default_threads(), seed=seed, **given)
        path = save_index(index, model_dir)
    report: dict[str, Any] = {
        "kind": kind,
        "path": str(path),
        "params": index.params(),
        **index.build_info,
    }
    if as_json:
        console.out(json.dumps(report))
        return
    info = index.build_info
    console.print(f"{kind} index over {index.n_items} items (dim {index.dim}) saved to {path}")
    console.print(f"  params   {index.params()}")
    console.print(
        f"  build    {info['build_seconds']:.2f} s, memory {info['memory_bytes'] / 2**20:.1f} MiB"
    )
    n_q = info.get("recall_queries")
    console.print(
        f"  recall@10 vs exact {info['recall@10']:.4f}"
        + (f" on {n_q} users" if n_q else " (by definition)")
    )

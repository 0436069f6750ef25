"""``dotrec bench serving``: the serving-cost benchmark (see :mod:`dotrec.bench.serving`)."""

from __future__ import annotations

from pathlib import Path

import typer

from dotrec.cli.app import app, console, err_console
from dotrec.errors import ConfigError
from dotrec.models.base import DotProductModel

bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("serving")
def serving_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Directory for serving.json/.md/.png."),
    sizes: str = typer.Option("1e4,1e5,1e6", help="Catalog sizes (4e6 where memory allows)."),
    dim: int = typer.Option(64, help="Vector width (must match --model)."),
    model_dir: Path | None = typer.Option(
        None,
        "--model",
        help="Trained dot-product model "
        "whose factor distribution the catalogs follow "
        "(default: a quick MF on synthetic data).",
    ),
    methods: str = typer.Option(
        "exact,hnsw,ivf,neumf", help="Among exact, hnsw, hnsw-ip, ivf, ivf-ip, neumf."
    ),
    threads: int = typer.Option(
        2, help="Threads of builds and batched search (single-query latency always uses 1)."
    ),
    recall_queries: int = typer.Option(1000, help="Queries for recall@10."),
    latency_queries: int = typer.Option(1000, help="Most single queries timed per setting."),
    seed: int = typer.Option(0, help="Seed of the catalogs and the index builds."),
) -> None:
    """Measure MIPS serving cost against NeuMF whole-catalog scoring; write a table, JSON, plot."""
    from dotrec.bench.serving import (
        ServingBenchConfig,
        parse_sizes,
        run_serving_bench,
        summary_lines,
        table_markdown,
        write_reports,
    )
    from dotrec.models import load_model

    cfg = ServingBenchConfig(
        sizes=parse_sizes(sizes),
        dim=dim,
        threads=threads,
        methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
        recall_queries=recall_queries,
        latency_queries=latency_queries,
        seed=seed,
    )
    model = None if model_dir is None else load_model(model_dir)
    if model is not None and not isinstance(model, DotProductModel):
        raise ConfigError(
            f"{model_dir}: a {model.name!r} model is not a dot product; the "
            "serving benchmark needs a dot-product model (mf, ials)"
        )
    res = run_serving_bench(
        cfg,
        model,
        source_name=str(model_dir or ""),
        log=lambda msg: err_console.print(msg, highlight=False),
    )
    paths = write_reports(res, out)
    console.out(table_markdown(res))
    console.out("")
    for line in summary_lines(res):
        console.out(line)
    console.out("wrote " + ", ".join(str(p) for p in paths.values()))

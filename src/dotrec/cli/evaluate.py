"""``dotrec evaluate MODEL_DIR``: evaluate a saved model under the sampled and/or full protocol."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dotrec.cli._common import load_split, print_table, results_table
from dotrec.cli.app import app, console, data_dir_option, err_console
from dotrec.errors import ConfigError
from dotrec.eval.protocols import evaluate
from dotrec.models import load_model
from dotrec.models.base import check_compatible


@app.command("evaluate")
def evaluate_cmd(
    model_dir: Path = typer.Argument(..., help="A model directory written by `dotrec train`."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Registry name or path."),
    data_dir: Path | None = data_dir_option(),
    fmt: str | None = typer.Option(None, "--format", help="Ratings file format: dat|udata|csv."),
    protocol: str = typer.Option("both", help="sampled|full|both."),
    k: int = typer.Option(10, "-k", help="Cut-off for HR@k / NDCG@k."),
    seed: int = typer.Option(0, help="Split seed (raw and synthetic datasets)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Evaluate a saved model on a dataset's test split."""
    if protocol not in ("sampled", "full", "both"):
        raise ConfigError(f"--protocol must be sampled, full or both, got {protocol!r}")
    if k < 1:
        raise ConfigError("-k must be >= 1")
    model = load_model(model_dir)
    split = load_split(dataset, data_dir, seed, fmt)
    check_compatible(model, split.train, str(model_dir))
    if model.train_fingerprint and model.train_fingerprint != split.train.fingerprint():
        err_console.print(
            f"warning: {model_dir} was trained on different interactions than "
            f"{split.name}'s training set"
        )
    res = {p: r.summary() for p, r in evaluate(model, split, protocol=protocol, k=k).items()}
    if as_json:
        for r in res.values():
            r.pop("stderr", None)
            r.pop("protocol_version", None)
            r.pop("self_negatives", None)
        console.out(json.dumps(res))
        return
    print_table(results_table([(model.name, res, None)], k, title=f"{model_dir} on {split.name}"))

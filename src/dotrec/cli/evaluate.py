"""``dotrec evaluate MODEL_DIR``: evaluate a saved model under the sampled and/or full protocol."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dotrec.artifacts import read_meta
from dotrec.cli._common import load_split, print_table, results_table, with_data_options
from dotrec.cli.app import (
    app,
    console,
    data_dir_option,
    dataset_option,
    err_console,
    format_option,
    k_option,
)
from dotrec.cli.train import print_ranking
from dotrec.data.registry import DataOptions
from dotrec.data.splits import FileSplit
from dotrec.errors import ConfigError
from dotrec.eval.protocols import evaluate
from dotrec.eval.ranking import evaluate_ranking
from dotrec.models import load_model
from dotrec.models.base import check_compatible


@app.command("evaluate")
@with_data_options
def evaluate_cmd(
    model_dir: Path = typer.Argument(..., help="A model directory written by `dotrec train`."),
    dataset: str | None = dataset_option(None, "Registry name or path (default: the model's own)."),
    data_dir: Path | None = data_dir_option(),
    fmt: str | None = format_option(),
    protocol: str = typer.Option("both", help="sampled|full|both."),
    k: int = k_option(),
    seed: int | None = typer.Option(
        None, help="Split seed (raw and synthetic datasets; default: the model's seed)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    other_data: bool = typer.Option(
        False,
        "--other-data",
        help="Evaluate although the model was trained on other interactions than this "
        "split's training set (its test items may then be in the model's training data).",
    ),
    data_options: DataOptions = DataOptions(),
) -> None:
    """Evaluate a saved model on a dataset's test split.

    A split given by files (``gowalla``) is evaluated by full ranking over all its test items
    (Recall, NDCG and Precision at -k; the LightGCN protocol), whatever --protocol says.
    """
    if protocol not in ("sampled", "full", "both"):
        raise ConfigError(f"--protocol must be sampled, full or both, got {protocol!r}")
    model = load_model(model_dir)
    if dataset is None:
        dataset = (read_meta(model_dir).get("dataset") or {}).get("name")
        if not dataset:
            raise ConfigError(f"{model_dir} does not record its dataset; pass --dataset")
    if seed is None:
        seed = int(model.config().get("seed") or 0)
    split = load_split(dataset, data_dir, seed, fmt, options=data_options)
    check_compatible(model, split.train, str(model_dir))
    if model.train_fingerprint and model.train_fingerprint != split.train.fingerprint():
        message = (
            f"{model_dir} was trained on other interactions than {split.name}'s training set "
            f"(split seed {seed})"
        )
        if not other_data:
            raise ConfigError(
                message + "; its test items may be in the model's training data. Pass the "
                "training --seed, or --other-data to evaluate anyway"
            )
        err_console.print(f"warning: {message}")
    if isinstance(split, FileSplit):
        summary = evaluate_ranking(model, split, k=k).summary()
        if as_json:
            console.out(json.dumps({"ranking": summary}))
        else:
            print_ranking(model.name, summary, f"{model_dir} on {split.name}")
        return
    res = {p: r.summary() for p, r in evaluate(model, split, protocol=protocol, k=k).items()}
    if as_json:
        for r in res.values():
            r.pop("stderr", None)
            r.pop("self_negatives", None)
        console.out(json.dumps(res))
        return
    print_table(results_table([(model.name, res, None)], k, title=f"{model_dir} on {split.name}"))

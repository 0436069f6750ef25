"""``dotrec compare``: train several models on one dataset and print one evaluation table.

This is the README's main job until the tuned study lands: it shows Popularity, the sanity
baseline, beside dot-product MF on the built-in synthetic data.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import typer

from dotrec.cli._common import (
    epoch_progress,
    leave_one_out_only,
    load_split,
    print_table,
    results_table,
    with_data_options,
)
from dotrec.cli.app import app, console, data_dir_option, dataset_option, k_option, threads_option
from dotrec.cli.train import build_model
from dotrec.data.registry import DataOptions
from dotrec.errors import ConfigError
from dotrec.eval.protocols import evaluate
from dotrec.models import MODELS, Model

#: Hand-set settings that train quickly and well on the built-in synthetic data (measured:
#: sampled HR@10 0.93 for MF vs 0.60 for Popularity). They are a starting point, not tuned
#: results; models without an entry use their constructor defaults.
QUICK_SETTINGS: dict[str, dict[str, Any]] = {
    "mf": {"embedding_dim": 16, "epochs": 60, "learning_rate": 0.02, "regularization": 0.005},
}


@app.command("compare")
@with_data_options
def compare_cmd(
    models: str = typer.Option("popularity,mf", help="Comma-separated model names."),
    dataset: str = dataset_option(),
    data_dir: Path | None = data_dir_option(),
    seed: int = typer.Option(0, help="Random seed for every model and the split."),
    threads: int | None = threads_option(),
    k: int = k_option(),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Directory for one saved model per name."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    data_options: DataOptions = DataOptions(),
) -> None:
    """Train MODELS with quick settings on one dataset and print both protocols side by side."""
    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        raise ConfigError(
            f"unknown model(s) {', '.join(unknown) or '(none)'}; choose from "
            f"{', '.join(sorted(MODELS))}"
        )
    split = leave_one_out_only(load_split(dataset, data_dir, seed, options=data_options), "compare")
    rows = []
    for name in names:
        opts: dict[str, Any] = dict(QUICK_SETTINGS.get(name, {}))
        if threads is not None and "threads" in inspect.signature(MODELS[name]).parameters:
            opts["threads"] = threads  # models without threads (popularity) ignore the flag
        model = build_model(name, opts, seed)
        n_epochs = int(model.config().get("epochs", 1) or 1)
        with epoch_progress(transient=True) as progress:
            task = progress.add_task(f"train {name}", total=n_epochs, info="")

            def on_epoch(epoch: int, m: Model, task: Any = task) -> None:
                progress.update(task, completed=epoch)

            model.fit(split.train, on_epoch=on_epoch)
        if out is not None:
            model.save(out / name, dataset=split.name, train=split.train)
        res = {p: r.summary() for p, r in evaluate(model, split, protocol="both", k=k).items()}
        rows.append((name, res, model.fit_info.get("fit_seconds")))
    if as_json:
        console.out(json.dumps({n: {"results": r, "fit_seconds": t} for n, r, t in rows}))
        return
    print_table(
        results_table(
            rows,
            k,
            title=f"{split.name}: sampled ({split.negatives.shape[1]} "
            "negatives) and full-catalog leave-one-out",
        )
    )

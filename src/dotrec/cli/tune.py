"""``dotrec tune MODEL``: tune one model at one embedding size on the tuning holdout.

Trials are stored as they run (SQLite in ``--out`` by default), so the same command resumes an
interrupted study; with ``--storage postgresql://...`` several processes, on one machine or
many, work on one study and stop together when ``--trials`` trials have finished in total.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from dotrec._optional import import_optional
from dotrec.artifacts import atomic_write_bytes
from dotrec.cli._common import LoggedProgress, load_split, print_table, with_data_options
from dotrec.cli.app import (
    app,
    checkpoint_every_option,
    console,
    data_dir_option,
    dataset_option,
    default_threads,
    device_option,
    early_stopping_option,
    epoch_scale_option,
    err_console,
    heartbeat_option,
    holdout_negatives_option,
    holdout_users_option,
    k_option,
    metric_option,
    optimizer_option,
    precision_option,
    pruner_option,
    storage_option,
    threads_option,
    torch_options,
)
from dotrec.data.registry import DataOptions

if TYPE_CHECKING:  # Optuna (the `tune` extra) is imported only when a command needs it
    from dotrec.tune import TuneProgress, TuneResult


def trial_progress() -> Progress:
    """A Rich progress display for trials (on stderr): n of N, best so far, ETA."""
    return LoggedProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
    )


class TrialDisplay:
    """Turns :class:`TuneProgress` snapshots into updates of one progress task."""

    def __init__(self, progress: Progress, task: TaskID, metric: str) -> None:
        self.progress = progress
        self.task = task
        self.metric = metric

    def __call__(self, p: TuneProgress) -> None:
        info = (
            "best -"
            if p.best_value is None
            else f"best {self.metric} {p.best_value:.4f} (trial {p.best_trial})"
        )
        if p.event is not None:
            e = p.event
            info += f" | trial {e.trial} {e.phase} epoch {e.epoch}/{e.epochs}"
            if e.value is not None:
                info += f" {self.metric} {e.value:.4f}"
        if p.waiting_for:
            info += f" | waiting for {p.waiting_for} running trial(s) of other workers"
        self.progress.update(self.task, total=p.total, completed=p.finished, info=info)


def result_table(result: TuneResult, metric: str) -> Table:
    """Counts, the best value and the best configuration of a tuning study."""
    t = Table(title=f"study {result.study_name}", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    t.add_row(
        "finished trials",
        f"{result.finished} of {result.n_trials} "
        f"({result.complete} complete, {result.pruned} pruned; "
        f"{result.failed} failed, not counted)",
    )
    t.add_row(
        f"best holdout {metric}",
        "-"
        if result.best_value is None
        else f"{result.best_value:.4f} (trial {result.best_trial})",
    )
    for name, value in sorted(result.best_params.items()):
        t.add_row(name, f"{value:.4g}" if isinstance(value, float) else str(value))
    t.add_row("storage", result.storage)
    return t


def load_optuna() -> None:
    """Check that Optuna is installed and keep its per-trial INFO lines out of the display."""
    optuna = import_optional("optuna", "tuning", "pip install 'dotrec[tune]'")
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@app.command("tune")
@with_data_options
def tune_cmd(
    model_name: str = typer.Argument(
        ..., metavar="MODEL", help="Model to tune: mf, ials, gmf, mlp or neumf."
    ),
    dataset: str = dataset_option(),
    data_dir: Path | None = data_dir_option(),
    trials: int = typer.Option(
        ..., "--trials", "-n", help="Finished trials to reach in total (all workers and runs)."
    ),
    dim: int = typer.Option(
        64,
        "--dim",
        help="Embedding size, fixed while tuning (paper accounting: GMF k, MLP 2k, NeuMF 3k).",
    ),
    timeout: float | None = typer.Option(None, help="Start no new trial after S seconds."),
    storage: str | None = storage_option(),
    study: str | None = typer.Option(
        None, "--study", help="Study name (default: DATASET:MODEL:dDIM)."
    ),
    out: Path = typer.Option(
        Path("runs/tune"),
        "--out",
        "-o",
        help="Folder of the default storage and of the result JSON.",
    ),
    metric: str = metric_option(),
    k: int = k_option("Cut-off of the objective metric."),
    seed: int = typer.Option(0, help="Seed of the sampler, the holdout and the models."),
    pruner: str = pruner_option(),
    epoch_scale: float = epoch_scale_option(),
    threads: int | None = threads_option(),
    holdout_negatives: int = holdout_negatives_option(),
    holdout_users: int = holdout_users_option(),
    early_stopping: int = early_stopping_option(
        "Stop each trial N epochs after its best holdout epoch; the best configuration then "
        "trains that epoch count. 0 = off (every sampled epoch)."
    ),
    heartbeat: int = heartbeat_option(),
    checkpoint_every: float = checkpoint_every_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    optimizer: str = optimizer_option(),
    precision: str = precision_option(),
    device: str = device_option(),
    data_options: DataOptions = DataOptions(),
) -> None:
    """Tune MODEL on the tuning holdout of a dataset (the test set is never read)."""
    load_optuna()
    from dotrec.tune import default_storage, open_storage, redact, tune
    from dotrec.tune.checkpoint import CHECKPOINTS_DIR

    url = storage or default_storage(out)
    rdb = open_storage(url, heartbeat)  # before loading data: a bad URL fails at once
    split = load_split(dataset, data_dir, seed, options=data_options)
    with trial_progress() as progress:
        task = progress.add_task(f"tune {model_name} d{dim}", total=trials, info="")
        result = tune(
            split,
            model_name,
            size=dim,
            n_trials=trials,
            storage=rdb,
            study_name=study,
            metric=metric,
            k=k,
            seed=seed,
            threads=threads or default_threads(),
            pruner=pruner,
            epoch_scale=epoch_scale,
            timeout=timeout,
            holdout_negatives=holdout_negatives,
            holdout_users=holdout_users or None,
            early_stopping=early_stopping or None,
            on_progress=TrialDisplay(progress, task, metric),
            torch_options=torch_options(model_name, optimizer, precision, device),
            checkpoints=out / CHECKPOINTS_DIR,
            checkpoint_every=checkpoint_every,
        )
    path = out / (re.sub(r"[^A-Za-z0-9_.-]+", "_", result.study_name) + ".json")
    atomic_write_bytes(path, json.dumps(asdict(result), indent=1, default=str).encode())
    if as_json:
        console.out(json.dumps(asdict(result), default=str))
        return
    print_table(result_table(result, f"{metric}@{k}"))
    if result.timed_out and not result.done:
        console.print(
            f"stopped by --timeout after {result.seconds:.0f} s with "
            f"{result.finished} of {result.n_trials} trials finished; rerun the same "
            "command to continue"
        )
    console.print(f"result written to {path} (storage {redact(url)})")
    if result.best_trial is not None:
        console.print(
            "train the best configuration on all the training data:\n"
            + train_command(model_name, dataset, data_dir, seed, path),
            highlight=False,
            soft_wrap=True,
        )


def train_command(model: str, dataset: str, data_dir: Path | None, seed: int, config: Path) -> str:
    """The ``dotrec train`` command that fits a tuning result's best configuration."""
    parts = ["dotrec", "train", model, "--dataset", dataset]
    if data_dir is not None:
        parts += ["--data-dir", str(data_dir)]
    parts += ["--config", str(config), "--seed", str(seed), "--out", f"runs/{model}-best"]
    return " ".join(shlex.quote(p) for p in parts)

"""``dotrec study``: the fair comparison of dot product and learned similarity.

Every model is tuned at every embedding size with the same trial budget on the tuning holdout,
the winners are retrained with several seeds and tested (leave-one-out: under the sampled and
the full-catalog protocol; a split given by files, such as ``gowalla``: by full ranking with
Recall@k, NDCG@k and Precision@k), and the report (``OUT/report.md``, ``OUT/report.html`` and
PNG figures) is written. Rerunning the same command resumes an interrupted study and reuses
every finished trial and seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import Progress, TaskID
from rich.table import Table

from dotrec._optional import import_optional
from dotrec.cli._common import load_split, print_table, with_data_options
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
from dotrec.cli.train import parse_int_list
from dotrec.cli.tune import TrialDisplay, load_optuna, trial_progress
from dotrec.data.registry import DataOptions

#: Where ``--interim`` writes its report, inside the study's folder.
INTERIM_DIR = "interim"

if TYPE_CHECKING:  # Optuna and matplotlib (extras) are imported only when the command runs
    from dotrec.study import Cell, StudyConfig
    from dotrec.tune import TuneProgress


class StudyDisplay:
    """Progress of a study (a :class:`dotrec.study.StudyListener`): cells done, the current
    cell's trials, the retraining epochs."""

    def __init__(self, progress: Progress, metric: str, k: int) -> None:
        self.progress = progress
        self.metric = f"{metric}@{k}"
        self.k = k
        self.cells = progress.add_task("cells", total=None, info="")
        self.step: TaskID | None = None
        self.trials: TrialDisplay | None = None

    def _replace_step(self, description: str, total: int | None) -> TaskID:
        if self.step is not None:
            self.progress.remove_task(self.step)
        self.step = self.progress.add_task(description, total=total, info="")
        return self.step

    def cell_started(self, index: int, total: int, model: str, size: int) -> None:
        self.progress.update(
            self.cells, total=total, completed=index, info=f"{model} at size {size}"
        )
        task = self._replace_step(f"tune {model} d{size}", None)
        self.trials = TrialDisplay(self.progress, task, self.metric)

    def tuning(self, progress: TuneProgress) -> None:
        if self.trials is not None:
            self.trials(progress)

    def retraining(
        self, seed_index: int, n_seeds: int, phase: str, epoch: int, epochs: int
    ) -> None:
        if self.trials is not None:
            self._replace_step("retrain", epochs)
            self.trials = None
        assert self.step is not None
        self.progress.update(
            self.step,
            total=epochs,
            completed=epoch,
            info=f"seed {seed_index + 1} of {n_seeds}, {phase} epochs",
        )

    def cell_finished(self, cell: Cell, reused: int) -> None:
        from dotrec.study.driver import PROTOCOL_METRICS
        from dotrec.study.report import metric_label, plural

        self.progress.advance(self.cells)
        protocol = cell.protocols[0]  # sampled (leave-one-out) or ranking (files)
        metric = PROTOCOL_METRICS[protocol][0]  # HR or Recall
        values = cell.metric(protocol, f"{metric}@{self.k}")
        self.progress.console.print(
            f"{cell.model} size {cell.counted_size}: holdout {self.metric} "
            f"{cell.tuning.best_value:.4f} (best of {plural(cell.tuning.finished, 'trial')}), test "
            f"{metric_label(cell.kind, protocol, metric, self.k)} {values.mean():.4f} over "
            f"{plural(len(values), 'seed')}" + (f" ({reused} reused)" if reused else "")
        )
        self.trials = None


@app.command("study")
@with_data_options
def study_cmd(
    dataset: str = dataset_option(),
    data_dir: Path | None = data_dir_option(),
    models: str = typer.Option("mf,ials,gmf,mlp,neumf", help="Comma-separated models."),
    dims: str = typer.Option(
        "16,32,64,128,192",
        help="Comma-separated embedding sizes (paper accounting: GMF k, MLP 2k, NeuMF 3k).",
    ),
    trials: int = typer.Option(50, "--trials", "-n", help="Finished trials per cell."),
    seeds: int = typer.Option(3, help="Seeds per cell for the final fits."),
    out: Path = typer.Option(
        Path("runs/study"),
        "--out",
        "-o",
        help="Folder of the storage, the cell records and the report.",
    ),
    storage: str | None = storage_option(),
    metric: str = metric_option(
        "Tuning objective on the holdout: ndcg, hr or rr (leave-one-out); ndcg, recall or hr "
        "(read as recall) on a split given by files."
    ),
    k: int = k_option("Cut-off k: HR@k / NDCG@k, or Recall@k / NDCG@k / Precision@k on files."),
    seed: int = typer.Option(0, help="Seed of the tuning, the holdout and the first final fit."),
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
    optimizer: str = optimizer_option(),
    precision: str = precision_option(),
    device: str = device_option(),
    status: bool = typer.Option(
        False,
        "--status",
        help="Print where the study in --out stands (each cell's trials, best holdout value, "
        "final fits and machine hours) and exit; runs nothing and reads no data.",
    ),
    interim: bool = typer.Option(
        False,
        "--interim",
        help="Write the report of the cells done so far into OUT/interim/ (marked interim) "
        "and exit; trains nothing, so it may run beside the study.",
    ),
    data_options: DataOptions = DataOptions(),
) -> None:
    """Tune, retrain and test every model at every size; print the table, write the report.

    A study resumes where it stopped: rerun the same command. ``--status`` (with the same
    --out, --models, --dims, --trials and --seeds) shows how far it is, ``--interim``
    reports the cells done so far.
    """
    load_optuna()
    from dotrec.study import StudyConfig, run_study, write_report
    from dotrec.study.driver import PROTOCOL_METRICS
    from dotrec.study.parts import load_parts
    from dotrec.study.report import results_table
    from dotrec.study.status import interim_study

    config = StudyConfig(
        models=tuple(m.strip() for m in models.split(",") if m.strip()),
        dims=tuple(parse_int_list(dims, "--dims")),
        n_trials=trials,
        n_seeds=seeds,
        metric=metric,
        k=k,
        seed=seed,
        pruner=pruner,
        epoch_scale=epoch_scale,
        threads=threads or default_threads(),
        storage=storage,
        heartbeat=heartbeat,
        holdout_negatives=holdout_negatives,
        holdout_users=holdout_users or None,
        early_stopping=early_stopping or None,
        checkpoint_every=checkpoint_every,
        **torch_options("neumf", optimizer, precision, device),
    )
    if status:
        _print_status(config, out, dataset)
        return
    import_optional("matplotlib", "the study report", "pip install 'dotrec[plots]'")
    split = load_split(dataset, data_dir, seed, options=data_options)
    with trial_progress() as progress:
        display = StudyDisplay(progress, metric, k)
        if interim:
            result = interim_study(split, config, out, display)
        else:
            result = run_study(split, config, out, display)
    md, page = write_report(result, out / INTERIM_DIR if interim else out, load_parts(out))
    table = results_table(result, compact=True)
    sd = max(
        (
            float(c.metric(p, f"{m}@{k}").std(ddof=1))
            for c in result.cells
            for p in c.protocols
            for m in PROTOCOL_METRICS[p]
            if len(c.runs) > 1
        ),
        default=0.0,
    )
    t = Table(
        title=f"{result.dataset}: test set, mean over {seeds} seed(s)",
        caption=f"standard deviation over seeds <= {sd:.4f}; {md.name} has each one, the "
        "paired comparison and the citations of published rows",
    )
    for h in table.headers:
        t.add_column(
            h.replace(" ", "\n", 1) if "@" in h else h,
            justify="left" if h in ("model", "source") else "right",
        )
    for row in table.rows:
        t.add_row(*row)
    print_table(t)
    if interim:
        planned = len(config.models) * len(config.dims)
        console.print(f"interim report of {len(result.cells)} of {planned} cells: {md} and {page}")
    else:
        console.print(f"study finished in {result.wall_seconds:.0f} s; report: {md} and {page}")


def _print_status(config: StudyConfig, out: Path, dataset: str) -> None:
    """The table of ``dotrec study --status``: one row per cell, then the totals."""
    from dotrec.study.parts import PARTS_MD, hours_spent, load_parts
    from dotrec.study.status import study_status

    cells = study_status(config, out, dataset)
    t = Table(title=f"study in {out}: {config.n_trials} trials and {config.n_seeds} seeds per cell")
    for h in ("model", "size", "state", "trials", "best (trial)", "tune h", "fits", "fit h"):
        t.add_column(h, justify="left" if h in ("model", "state", "trials") else "right")
    for c in cells:
        r = c.tuning
        counts = () if r is None else ((r.pruned, "pruned"), (r.failed, "failed"))
        trials = [f"{c.finished}/{c.n_trials}"] + [
            f"{n} {what}" for n, what in (*counts, (c.running, "running")) if n
        ]
        fitted = [f"{c.seeds}/{c.n_seeds}"]
        for key, saved in c.checkpoints.items():  # the latest phase saved is the last
            phase, epoch = list(saved.items())[-1]
            # A trial's checkpoint (trial-N) beside the trials, a final fit's (final-seedI)
            # beside the fits.
            (fitted if key.startswith("final-") else trials).append(
                f"{key} saved at {phase} epoch {epoch}"
            )
        t.add_row(
            c.model,
            str(c.counted_size),
            c.state,
            ", ".join(trials),
            "-" if r is None or r.best_value is None else f"{r.best_value:.4f} ({r.best_trial})",
            f"{c.trial_seconds / 3600:.2f}",
            ", ".join(fitted),
            f"{c.fit_seconds / 3600:.2f}",
        )
    print_table(t)
    tuning = sum(c.trial_seconds for c in cells) / 3600
    fits = sum(c.fit_seconds for c in cells) / 3600
    done = sum(c.state == "done" for c in cells)
    console.print(
        f"{done} of {len(cells)} cells done; machine time {tuning:.2f} h of trials + "
        f"{fits:.2f} h of final fits = {tuning + fits:.2f} h"
    )
    parts = load_parts(out)
    if parts:
        console.print(
            f"recorded parts of the run: {len(parts)}, machine time spent "
            f"{hours_spent(parts):.2f} h ({out / PARTS_MD})"
        )

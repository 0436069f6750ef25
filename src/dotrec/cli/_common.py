"""Helpers shared by CLI subcommands: dataset loading, result tables, progress bars."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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

from dotrec.artifacts import FORMAT, META_FILE, written_by_dotrec
from dotrec.cli.app import console, err_console
from dotrec.data.registry import load_dataset
from dotrec.data.splits import Split
from dotrec.errors import ConfigError


def load_split(dataset: str, data_dir: Path | None, seed: int = 0, fmt: str | None = None) -> Split:
    """Load ``--dataset`` with a status line on stderr (large files take a second or two)."""
    with err_console.status(f"loading {dataset} ..."):
        return load_dataset(dataset, data_dir, seed=seed, fmt=fmt)


def check_model_out(out: Path | None, force: bool) -> None:
    """Refuse, before any work, an ``--out`` that exists and that this run must not replace.

    A model directory dotrec wrote is replaced only with ``--force``; anything else is never
    replaced.
    """
    if out is None or not (out.exists() or out.is_symlink()):
        return
    if not written_by_dotrec(out, META_FILE, FORMAT):
        raise ConfigError(
            f"--out {out} exists and is not a dotrec model directory; choose "
            "another path (nothing there was changed)"
        )
    if not force:
        raise ConfigError(f"--out {out} already holds a dotrec model; pass --force to replace it")


class LoggedProgress(Progress):
    """A Rich progress display that, when stderr is not a terminal, writes plain lines instead.

    Rich draws nothing on a pipe or a log file until the end; here every change of a task's
    ``completed`` count (an epoch, a trial) writes one line with the same figures as the bar,
    and so does any update at least :attr:`interval` seconds after the last line.
    """

    interval = 10.0

    def __init__(self, *columns: Any, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self._lines = not self.console.is_terminal
        self._last: dict[TaskID, tuple[float, float]] = {}

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        if self._lines:
            self._log(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        if self._lines:
            self._log(task_id)

    def _log(self, task_id: TaskID) -> None:
        with self._lock:
            task = self._tasks[task_id]
            now = time.monotonic()
            done, last = self._last.get(task_id, (-1.0, 0.0))
            if task.completed == done and now - last < self.interval:
                return
            self._last[task_id] = (task.completed, now)
            total = "" if task.total is None else f"/{task.total:g}"
            info = str(task.fields.get("info", "")).strip()
            elapsed = task.elapsed or 0.0
        self.console.print(
            f"{task.description} {task.completed:g}{total}"
            + (f" {info}" if info else "")
            + f" [{elapsed:.0f} s]",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def epoch_progress(transient: bool = False) -> Progress:
    """A Rich progress bar for epochs (on stderr, so --json output stays clean)."""
    return LoggedProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    )


def fmt_metric(summary: dict[str, Any], key: str) -> str:
    v = summary.get(key)
    return "-" if v is None else f"{v:.4f}"


def results_table(
    rows: Iterable[tuple[str, dict[str, dict[str, Any]], float | None]],
    k: int,
    title: str = "Evaluation",
) -> Table:
    """A table with one row per model: sampled HR/NDCG, full HR/NDCG/MRR, fit time."""
    rows = list(rows)
    ses = [
        se for _, res, _ in rows for s in res.values() for se in (s.get("stderr") or {}).values()
    ]
    caption = f"standard errors over users <= {max(ses):.4f}" if ses else None
    t = Table(title=title, caption=caption)
    t.add_column("model", no_wrap=True)
    t.add_column(f"sampled HR@{k}", justify="right")
    t.add_column(f"sampled NDCG@{k}", justify="right")
    t.add_column(f"full HR@{k}", justify="right")
    t.add_column(f"full NDCG@{k}", justify="right")
    t.add_column("full MRR", justify="right")
    t.add_column("fit s", justify="right")
    for name, res, fit_s in rows:
        s, f = res.get("sampled", {}), res.get("full", {})
        t.add_row(
            name,
            fmt_metric(s, f"hr@{k}"),
            fmt_metric(s, f"ndcg@{k}"),
            fmt_metric(f, f"hr@{k}"),
            fmt_metric(f, f"ndcg@{k}"),
            fmt_metric(f, "mrr"),
            "-" if fit_s is None else f"{fit_s:.1f}",
        )
    return t


def print_table(table: Table) -> None:
    console.print(table)

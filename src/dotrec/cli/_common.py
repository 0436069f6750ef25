"""Helpers shared by CLI subcommands: dataset loading, result tables, progress bars."""

from __future__ import annotations

import functools
import inspect
import time
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
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
from dotrec.data.filters import FilterReport
from dotrec.data.registry import DATASETS, DataOptions, load_dataset, load_file_split
from dotrec.data.splits import FileSplit, Split
from dotrec.errors import ConfigError


def load_split(
    dataset: str,
    data_dir: Path | None,
    seed: int = 0,
    fmt: str | None = None,
    options: DataOptions | None = None,
) -> Split | FileSplit:
    """Load ``--dataset`` with a status line on stderr (large files take a second or two).

    What the filters of ``options`` removed is printed on stderr. A split given by files
    (``gowalla``, or a folder holding ``train.txt`` and ``test.txt``) is a :class:`FileSplit`.
    """
    spec = DATASETS.get(dataset)
    if (spec is not None and spec.kind == "files") or (
        spec is None and (Path(dataset) / "train.txt").is_file()
    ):
        if options is not None and (options.columns_given() or options.filters_given()):
            raise ConfigError(f"{dataset} is a fixed split: column names and filters do not apply")
        with err_console.status(f"loading {dataset} ..."):
            return load_file_split(dataset, data_dir)

    def report(r: FilterReport) -> None:
        for line in r.lines():
            err_console.print(f"{dataset}: {line}", highlight=False)

    with err_console.status(f"loading {dataset} ..."):
        return load_dataset(
            dataset, data_dir, seed=seed, fmt=fmt, options=options, on_filtered=report
        )


def leave_one_out_only(split: Split | FileSplit, command: str) -> Split:
    """``split``, or a one-line error where ``command`` does not take splits given by files."""
    if isinstance(split, FileSplit):
        raise ConfigError(
            f"`dotrec {command}` does not take a split given by files ({split.name}) yet; "
            "train and evaluate do"
        )
    return split


#: The options of :class:`DataOptions`, added to every command that reads a dataset.
_DATA_PARAMS = [
    (
        "user_col",
        str | None,
        typer.Option(
            None, "--user-col", help="User id column of a CSV/TSV/Parquet table with a header."
        ),
    ),
    ("item_col", str | None, typer.Option(None, "--item-col", help="Item id column.")),
    ("rating_col", str | None, typer.Option(None, "--rating-col", help="Rating column.")),
    (
        "time_col",
        str | None,
        typer.Option(
            None,
            "--time-col",
            help="Integer timestamp column (leave-one-out then holds out each user's latest).",
        ),
    ),
    (
        "sep",
        str | None,
        typer.Option(
            None,
            "--sep",
            help="Field separator of a text table (default: tab for .tsv, else comma).",
        ),
    ),
    (
        "min_rating",
        float | None,
        typer.Option(
            None, "--min-rating", help="Keep ratings >= X as positives (raw data with ratings)."
        ),
    ),
    (
        "min_user_count",
        int,
        typer.Option(
            0,
            "--min-user-count",
            min=0,
            help="Iterated k-core: drop users with fewer interactions.",
        ),
    ),
    (
        "min_item_count",
        int,
        typer.Option(
            0,
            "--min-item-count",
            min=0,
            help="Iterated k-core: drop items with fewer interactions.",
        ),
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def with_data_options(fn: F) -> F:
    """Add the column and filter options to a command; it receives ``data_options``.

    Declared once here so that train, evaluate, tune, study, compare and data info read a
    dataset the same way.
    """
    sig = inspect.signature(fn)
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
        for name, ann, default in _DATA_PARAMS
    ]
    params = [p for p in sig.parameters.values() if p.name != "data_options"] + extra

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opts = DataOptions(**{name: kwargs.pop(name) for name, _, _ in _DATA_PARAMS})
        return fn(*args, data_options=opts, **kwargs)

    hints = {k: v for k, v in typing.get_type_hints(fn).items() if k != "data_options"}
    wrapper.__annotations__ = {**hints, **{name: ann for name, ann, _ in _DATA_PARAMS}}
    wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(annotation=wrapper.__annotations__[p.name]) for p in params]
    )
    return wrapper  # type: ignore[return-value]


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
    """Print a table; to a file or a log at its natural width rather than wrapped at 80."""
    if console.is_terminal:
        console.print(table)
        return
    natural = console.measure(table, options=console.options.update(width=10_000)).maximum
    Console(file=console.file, width=max(console.width, natural)).print(table)

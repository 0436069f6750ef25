"""``dotrec data list|info|download``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import TaskID
from rich.table import Table

from dotrec.cli._common import (
    LoggedProgress,
    leave_one_out_only,
    load_split,
    print_table,
    with_data_options,
)
from dotrec.cli.app import app, console, data_dir_option, err_console
from dotrec.data.registry import (
    DATASETS,
    DataOptions,
    dataset_path,
    load_file_split,
    missing_files,
)
from dotrec.data.splits import FileSplit

data_app = typer.Typer(help="List, inspect and download datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("list")
def list_cmd(data_dir: Path | None = data_dir_option()) -> None:
    """List the registered datasets and whether their files are in the data directory."""
    t = Table(title=f"datasets (data dir: {dataset_path('', data_dir)})")
    t.add_column("name")
    t.add_column("kind")
    t.add_column("present")
    t.add_column("description")
    for spec in DATASETS.values():
        if spec.kind == "synthetic":
            present = "built-in"
        else:
            missing = missing_files(spec.name, data_dir)
            folder = dataset_path(spec.name, data_dir)
            present = (
                "yes"
                if not missing
                else "no"
                if not folder.is_dir() or not any(folder.iterdir())
                else "partly (missing " + ", ".join(p.name for p in missing) + ")"
            )
        t.add_row(spec.name, spec.kind, present, spec.description)
    print_table(t)


@data_app.command("info")
@with_data_options
def info_cmd(
    name: str = typer.Argument(..., help="Registry name or path."),
    data_dir: Path | None = data_dir_option(),
    fmt: str | None = typer.Option(None, "--format", help="Ratings file format: dat|udata|csv."),
    seed: int = typer.Option(0, help="Split seed (raw and synthetic datasets)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    data_options: DataOptions = DataOptions(),
) -> None:
    """Print users, items, interactions, density and split sizes of a dataset."""
    spec = DATASETS.get(name)
    if spec is not None and spec.kind == "files":
        _print_info(_file_split_info(load_file_split(name, data_dir)), name, as_json)
        return
    split = leave_one_out_only(
        load_split(name, data_dir, seed, fmt, options=data_options), "data info"
    )
    tr = split.train
    info = {
        "name": split.name,
        "users": tr.n_users,
        "items": tr.n_items,
        "interactions": tr.n_interactions + split.n_test,
        "train_interactions": tr.n_interactions,
        "test_users": split.n_test,
        "eval_negatives": int(split.negatives.shape[1]),
        "density": (tr.n_interactions + split.n_test) / max(1, tr.n_users * tr.n_items),
        "timestamps": tr.timestamps is not None,
        "duplicates_merged": tr.n_duplicates_merged,
    }
    _print_info(info, split.name, as_json)


def _file_split_info(split: FileSplit) -> dict[str, object]:
    tr, te = split.train, split.test
    return {
        "name": split.name,
        "users": tr.n_users,
        "items": tr.n_items,
        "interactions": len(tr) + len(te),
        "train_interactions": len(tr),
        "test_interactions": len(te),
        "test_users": len(split.test_users),
        "test_items_per_user": len(te) / max(1, len(split.test_users)),
        "density": (len(tr) + len(te)) / max(1, tr.n_users * tr.n_items),
        "protocol": "full ranking, many test items per user (LightGCN)",
    }


def _print_info(info: dict[str, object], name: str, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(info))
        return
    t = Table(title=f"dataset {name}", show_header=False)
    for k, v in info.items():
        t.add_row(k, f"{v:.5f}" if isinstance(v, float) else str(v))
    print_table(t)


@data_app.command("download")
def download_cmd(
    name: str = typer.Argument(..., help="Registered dataset name."),
    data_dir: Path | None = data_dir_option(),
    mirror: str | None = typer.Option(
        None, help="Base URL serving NAME/FILE directly, instead of the upstream URLs."
    ),
    force: bool = typer.Option(False, help="Fetch even if a verified copy exists."),
) -> None:
    """Fetch a dataset's public files with a checksum check and atomic writes."""
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from dotrec.data.download import download

    with LoggedProgress(
        *Progress.get_default_columns(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err_console,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def report(label: str, done: int, total: int | None) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=total)
            progress.update(tasks[label], completed=done)

        paths = download(name, data_dir, mirror=mirror, progress=report, force=force)
    for p in paths:
        console.print(f"ok  {p}")

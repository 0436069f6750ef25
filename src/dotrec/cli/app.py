"""The Typer application object and the helpers every subcommand module shares.

Each ``dotrec.cli.<name>`` module adds its commands to :data:`app` (or a sub-app);
``dotrec.cli.main`` imports them all and turns :class:`~dotrec.errors.DotrecError` into one
clear line on stderr and a non-zero exit (a traceback only with ``--verbose``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from dotrec.errors import ConfigError

app = typer.Typer(
    name="dotrec",
    help="Recommendation with embeddings: dot product vs learned similarity, tuned fairly, "
    "evaluated exactly, served with MIPS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
# Piped into a file or a log there is no terminal width to fit: long lines stay whole (grep
# finds them) instead of being wrapped at Rich's default of 80 columns.
console.soft_wrap = not console.is_terminal
err_console.soft_wrap = not err_console.is_terminal

#: Set by the global ``--verbose`` flag.
STATE = {"verbose": False}


def _print_version(value: bool) -> None:
    if value:
        from dotrec._version import __version__

        console.print(f"dotrec {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks on errors."),
    version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        callback=_print_version,
        help="Print dotrec's version and exit.",
    ),
) -> None:
    STATE["verbose"] = verbose


def data_dir_option() -> Path | None:
    """The ``--data-dir`` option shared by commands that read datasets."""
    return typer.Option(
        None,
        "--data-dir",
        envvar="DOTREC_DATA_DIR",
        help="Where dataset files live (default: $DOTREC_DATA_DIR, else a "
        "per-user cache directory).",
    )


def dataset_option(default: str | None = "synthetic", help: str | None = None) -> Any:
    """``--dataset``/``-d`` of the commands that read a dataset."""
    return typer.Option(
        default,
        "--dataset",
        "-d",
        help=help or "Registry name, NCF prefix, or ratings file.",
    )


def format_option() -> Any:
    """``--format`` of a ratings file given as ``--dataset``."""
    return typer.Option(None, "--format", help="Ratings file format: dat|udata|csv.")


def threads_option() -> Any:
    """``--threads``: worker threads of training and search."""
    return typer.Option(None, help="Worker threads (default: up to 2).")


def seed_option(help: str, default: int | None = 0) -> Any:
    """``--seed``; ``help`` says what the seed drives in that command."""
    return typer.Option(default, help=help)


def metric_option(help: str = "Tuning objective on the holdout: ndcg, hr or rr.") -> Any:
    """``--metric`` of tune and study."""
    return typer.Option("ndcg", help=help)


def pruner_option() -> Any:
    """``--pruner`` of tune and study."""
    return typer.Option("median", help="Per-epoch pruning: median, halving or none.")


def epoch_scale_option() -> Any:
    """``--epoch-scale`` of tune and study."""
    return typer.Option(
        1.0, help="Multiply the searched epoch ranges (e.g. 0.25 for a quick study)."
    )


def holdout_negatives_option() -> Any:
    """``--holdout-negatives`` of tune and study."""
    return typer.Option(99, help="Sampled negatives per holdout user.")


def holdout_users_option() -> Any:
    """``--holdout-users`` of tune and study."""
    return typer.Option(
        0,
        help="Splits given by files: score the holdout items of this many users, a seeded "
        "sample that is the same for every model (0: all users). Makes learned-similarity "
        "trials affordable: their full ranking is a forward pass per user and item.",
    )


def heartbeat_option() -> Any:
    """``--heartbeat`` of tune and study."""
    return typer.Option(
        10,
        help="Seconds between trial heartbeats; a trial silent for two is retried by another "
        "run or worker.",
    )


def storage_option() -> Any:
    """``--storage`` of tune and study."""
    return typer.Option(
        None,
        help="Optuna storage URL (default: SQLite file OUT/optuna.db; postgresql://... for "
        "several workers).",
    )


def early_stopping_option(help: str) -> Any:
    """``--early-stopping N``: patience on the tuning holdout (0 = off)."""
    return typer.Option(0, "--early-stopping", min=0, help=help)


def checkpoint_every_option() -> Any:
    """``--checkpoint-every S``: seconds between two checkpoints of a running trial."""
    return typer.Option(
        600.0,
        "--checkpoint-every",
        min=0.0,
        help="Save the running trial's model (and a study's running final fit) at most every "
        "S seconds (in OUT/trial-checkpoints/; 0: after every epoch), so that a fit killed "
        "mid-run resumes there when the command is run again.",
    )


def k_option(help: str = "Cut-off for HR@k / NDCG@k.") -> Any:
    """``-k``, a positive cut-off (0 or less is a usage error)."""
    return typer.Option(10, "-k", min=1, help=help)


def optimizer_option(default: str | None = "adam") -> Any:
    """``--optimizer`` of the torch models (GMF, MLP, NeuMF)."""
    return typer.Option(
        default,
        "--optimizer",
        help="GMF/MLP/NeuMF optimizer: adam (dense, the paper's) or lazy_adam "
        "(touched embedding rows only; faster).",
    )


def precision_option(default: str | None = "fp32") -> Any:
    """``--precision`` of the torch models."""
    return typer.Option(
        default, "--precision", help="GMF/MLP/NeuMF: fp32, or bf16 for the MLP tower's products."
    )


def device_option(default: str | None = "cpu") -> Any:
    """``--device`` of the torch models."""
    return typer.Option(
        default,
        "--device",
        help="GMF/MLP/NeuMF training device: cpu, cuda or auto (CUDA when torch sees a GPU).",
    )


def torch_options(model: str, optimizer: str, precision: str, device: str) -> dict[str, str]:
    """The torch models' options, checked; an error if ``model`` is not a torch model and one
    of them differs from its default (it would be silently ignored)."""
    from dotrec._torch import check_device, check_precision
    from dotrec.models.ncf import OPTIMIZERS

    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    check_precision(precision)
    check_device(device)
    chosen = {"optimizer": optimizer, "precision": precision, "device": device}
    if model not in ("gmf", "mlp", "neumf"):
        changed = [
            k
            for k, v in chosen.items()
            if v != {"optimizer": "adam", "precision": "fp32", "device": "cpu"}[k]
        ]
        if changed:
            raise ConfigError(f"--{changed[0]} applies to gmf, mlp and neumf only, not {model!r}")
    return chosen


def default_threads() -> int:
    return max(1, min(2, os.cpu_count() or 1))

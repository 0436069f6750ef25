"""The Typer application object and the helpers every subcommand module shares.

Each ``dotrec.cli.<name>`` module adds its commands to :data:`app` (or a sub-app);
``dotrec.cli.main`` imports them all and turns :class:`~dotrec.errors.DotrecError` into one
clear line on stderr and a non-zero exit (a traceback only with ``--verbose``).
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

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

#: Set by the global ``--verbose`` flag.
STATE = {"verbose": False}


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v",
                                       help="Show tracebacks on errors.")) -> None:
    STATE["verbose"] = verbose


def data_dir_option() -> Path | None:
    """The ``--data-dir`` option shared by commands that read datasets."""
    return typer.Option(None, "--data-dir", envvar="DOTREC_DATA_DIR",
                        help="Where dataset files live (default: $DOTREC_DATA_DIR, else a "
                             "per-user cache directory).")


def default_threads() -> int:
    return max(1, min(2, os.cpu_count() or 1))

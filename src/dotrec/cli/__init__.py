"""dotrec's command-line interface (``dotrec --help``)."""

from __future__ import annotations

import sys

from dotrec.cli.app import STATE, app, err_console
from dotrec.errors import DotrecError

# Subcommand modules register their commands on `app` when imported (one line each).
from dotrec.cli import data as _data  # noqa: E402,F401
from dotrec.cli import train as _train  # noqa: E402,F401
from dotrec.cli import evaluate as _evaluate  # noqa: E402,F401
from dotrec.cli import compare as _compare  # noqa: E402,F401
from dotrec.cli import approx as _approx  # noqa: E402,F401
from dotrec.cli import tune as _tune  # noqa: E402,F401
from dotrec.cli import study as _study  # noqa: E402,F401
from dotrec.cli import index as _index  # noqa: E402,F401
from dotrec.cli import recommend as _recommend  # noqa: E402,F401
from dotrec.cli import serve as _serve  # noqa: E402,F401
from dotrec.cli import bench as _bench  # noqa: E402,F401


def main() -> None:
    """Entry point of the ``dotrec`` console script."""
    try:
        app(standalone_mode=False)
    except DotrecError as e:
        if STATE["verbose"]:
            raise
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # click usage errors and aborts come through standalone_mode=False
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(1)
        raise


__all__ = ["app", "main"]

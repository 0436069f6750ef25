"""dotrec's command-line interface (``dotrec --help``)."""

from __future__ import annotations

import importlib
import sys

from dotrec.cli import approx as _approx  # noqa: E402,F401
from dotrec.cli import bench as _bench  # noqa: E402,F401
from dotrec.cli import compare as _compare  # noqa: E402,F401

# Subcommand modules register their commands on `app` when imported (one line each).
from dotrec.cli import data as _data  # noqa: E402,F401
from dotrec.cli import evaluate as _evaluate  # noqa: E402,F401
from dotrec.cli import index as _index  # noqa: E402,F401
from dotrec.cli import recommend as _recommend  # noqa: E402,F401
from dotrec.cli import serve as _serve  # noqa: E402,F401
from dotrec.cli import study as _study  # noqa: E402,F401
from dotrec.cli import train as _train  # noqa: E402,F401
from dotrec.cli import tune as _tune  # noqa: E402,F401
from dotrec.cli.app import STATE, app, err_console
from dotrec.errors import DotrecError


def main() -> None:
    """Entry point of the ``dotrec`` console script."""
    try:
        app(standalone_mode=False, prog_name="dotrec")
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
    except Exception as e:  # usage errors and aborts come through standalone_mode=False
        usage, abort = _click_exceptions()
        verbose = STATE["verbose"] or bool({"-v", "--verbose"} & set(sys.argv[1:]))
        if isinstance(e, usage) and not verbose:
            ctx = getattr(e, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = e.format_message()  # type: ignore[attr-defined]
            err_console.print(
                f"[bold red]error:[/] {message}{hint}", highlight=False, soft_wrap=True
            )
            sys.exit(int(getattr(e, "exit_code", 2)))
        if isinstance(e, abort):
            sys.exit(1)
        raise


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """Click's ``ClickException`` and ``Abort``, from click and from the copy typer bundles.

    Recent typer releases raise their own vendored click classes, which are not subclasses
    of the ``click`` package's: both must be caught.
    """
    usage: list[type] = []
    abort: list[type] = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        usage.append(mod.ClickException)
        if hasattr(mod, "Abort"):  # typer's copy has none (it raises KeyboardInterrupt)
            abort.append(mod.Abort)
    return tuple(usage), tuple(abort)


__all__ = ["app", "main"]

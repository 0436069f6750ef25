"""``dotrec serve MODEL_DIR``: the HTTP recommendation service (uvicorn)."""

from __future__ import annotations

from pathlib import Path

import typer

from dotrec._optional import import_optional
from dotrec.cli.app import app, err_console


@app.command("serve")
def serve_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory written by `dotrec train`."),
    index: str | None = typer.Option(
        None, "--index", help="Saved index to search: exact, hnsw, ivf or ivfpq (default exact)."
    ),
    host: str | None = typer.Option(
        None,
        help="Address to listen on (default 127.0.0.1). Anything beyond loopback makes "
        "the service, which has no authentication, reachable from other machines.",
    ),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(
        1,
        help="Worker processes (each loads the model); with 2 or "
        "more, SIGHUP reloads the model without downtime.",
    ),
    threads: int = typer.Option(1, help="Threads one request's search may use."),
    mmap: bool = typer.Option(
        False,
        "--mmap",
        help="Map the model's arrays from its file instead of reading them: the workers share "
        "one copy in the page cache, and a catalog larger than memory is read from disk as "
        "searched (with an ivfpq index and --rescore sq8, only the codes need memory).",
    ),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
) -> None:
    """Serve recommendations over HTTP; API docs at /docs, metrics at /metrics.

    POST /admin/reload (from this machine) loads a new model version written to MODEL_DIR.
    """
    server = import_optional(
        "dotrec.serve.server", "serving", "pip install 'dotrec[serve]'", "FastAPI and uvicorn"
    )
    explicit = host is not None
    address = host if host is not None else server.DEFAULT_HOST
    if explicit and not server.resolves_to_loopback(address):
        err_console.print(
            f"warning: listening on {address}, reachable beyond this machine; "
            "the service has no authentication"
        )
    err_console.print(
        f"serving {model_dir} on http://{address}:{port} "
        f"(docs at /docs, {workers} worker{'s' if workers > 1 else ''})"
    )
    server.serve(
        model_dir,
        index=index,
        host=address,
        port=port,
        workers=workers,
        threads=threads,
        log_level=log_level,
        allow_remote=explicit,
        mmap=mmap,
    )

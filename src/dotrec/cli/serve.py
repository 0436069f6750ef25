"""``dotrec serve MODEL_DIR``: the HTTP recommendation service (uvicorn)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from dotrec.cli.app import app, err_console
from dotrec.errors import ConfigError


@app.command("serve")
def serve_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory written by `dotrec train`."),
    index: str | None = typer.Option(None, "--index", help="Saved index to search: exact, "
                                                           "hnsw or ivf (default exact)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Worker processes (each loads the model)."),
    threads: int = typer.Option(1, help="Threads one request's search may use."),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
) -> None:
    """Serve recommendations over HTTP; API docs at /docs, metrics at /metrics."""
    try:
        import uvicorn

        from dotrec.serve import app as serve_app
    except ImportError:
        raise ConfigError("serving needs the serve extra: pip install 'dotrec[serve]'") from None
    if workers < 1 or threads < 1:
        raise ConfigError("--workers and --threads must be >= 1")
    # Load once here: bad directories and missing indexes fail fast, with one clear line.
    application = serve_app.create_app(model_dir, index, threads=threads)
    err_console.print(f"serving {model_dir} on http://{host}:{port} "
                      f"(docs at /docs, {workers} worker{'s' if workers > 1 else ''})")
    if workers == 1:
        uvicorn.run(application, host=host, port=port, log_level=log_level)
        return
    del application
    os.environ[serve_app.ENV_MODEL_DIR] = str(model_dir)
    os.environ[serve_app.ENV_INDEX] = index or ""
    os.environ[serve_app.ENV_THREADS] = str(threads)
    uvicorn.run("dotrec.serve.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level=log_level)

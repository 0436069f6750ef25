"""Run the service under uvicorn, on loopback unless a wider address is asked for explicitly.

The service has no authentication: anyone who can reach its port can read every user's
recommendations. So it listens on 127.0.0.1 by default, and :func:`serve` refuses any other
address unless the caller passes ``allow_remote=True``, which ``dotrec serve`` does only when
the address came from an explicit ``--host`` option.
"""

from __future__ import annotations

import gc
import os
import socket

import uvicorn

from dotrec.errors import ConfigError
from dotrec.serve import app as serve_app

#: Where the service listens when no address is given.
DEFAULT_HOST = "127.0.0.1"
#: Seconds an idle keep-alive connection stays open. uvicorn's 5 s lets the server close a
#: connection just as a client (or a load balancer, whose idle timeout is usually 60 s) sends
#: on it, which the client sees as a dropped request (seen once in the load test on a loaded
#: machine); the server should outlast its clients' idle timeouts.
KEEP_ALIVE_S = 75


def resolves_to_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address (no lookup for literals)."""
    if serve_app.is_loopback(host):
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(serve_app.is_loopback(str(i[4][0])) for i in infos)


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse a non-loopback ``host`` unless ``allow_remote`` says it was asked for."""
    if not allow_remote and not resolves_to_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host!r}: it is reachable from other machines and the "
            "service has no authentication; pass --host explicitly to mean it"
        )


def serve(
    model_dir: str | os.PathLike[str],
    *,
    index: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = 8000,
    workers: int = 1,
    threads: int = 1,
    log_level: str = "warning",
    allow_remote: bool = False,
    mmap: bool = False,
) -> None:
    """Load ``model_dir`` and serve it until interrupted (blocks); ``mmap``: see
    :func:`~dotrec.serve.app.create_app`."""
    check_host(host, allow_remote)
    if workers < 1 or threads < 1:
        raise ConfigError("--workers and --threads must be >= 1")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {port}")
    # Load once here: bad directories and missing indexes fail fast, with one clear line.
    serve_app.limit_threads(threads)
    application = serve_app.create_app(model_dir, index, threads=threads, mmap=mmap)
    if workers == 1:
        uvicorn.run(
            application,
            host=host,
            port=port,
            log_level=log_level,
            timeout_keep_alive=KEEP_ALIVE_S,
        )
        return
    # The workers load their own copies. This process's copy was frozen out of the garbage
    # collector's reach by the load (and a FastAPI app holds reference cycles), so it is
    # unfrozen and collected here: otherwise it stays resident for the server's lifetime
    # (measured: 773 MiB for a 10^6-item model, more than one worker's).
    del application
    gc.unfreeze()
    gc.collect()
    os.environ[serve_app.ENV_MODEL_DIR] = str(model_dir)
    os.environ[serve_app.ENV_INDEX] = index or ""
    os.environ[serve_app.ENV_THREADS] = str(threads)
    os.environ[serve_app.ENV_MMAP] = "1" if mmap else ""
    uvicorn.run(
        "dotrec.serve.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        timeout_keep_alive=KEEP_ALIVE_S,
    )

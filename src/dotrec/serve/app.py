"""The HTTP recommendation service (FastAPI): recommendations, similar items, health, metrics.

Endpoints
    ``GET /users/{user_id}/recommendations?k=10&exclude_seen=true``
    ``POST /users/recommendations`` with ``{"users": [...], "k": 10, "exclude_seen": true}``:
    many users in one request, one search for all of them; each answer equals the one-user
    endpoint's (an unknown user is a 404 for the whole request).
    ``POST /recommendations`` with ``{"items": [...], "k": 10}``: a user the model has not seen,
    folded in from its item ids (no retraining); unknown ids are reported in
    ``unknown_items`` and ignored, and a list with no known item is a 422.
    ``GET /items/{item_id}/similar?k=10``
    ``GET /healthz`` and ``GET /metrics`` (Prometheus text format); OpenAPI docs at ``/docs``.
    ``POST /admin/reload``: load the model directory again (a new version written there by
    ``dotrec train --out``) and swap it in; accepted from loopback clients only.

Errors are JSON: an unknown user or item id gives 404 ``{"error": "unknown_user", "detail":
...}``; ``k`` outside ``1..MAX_K``, or an id longer than ``MAX_ID_LENGTH`` characters, gives
FastAPI's 422 validation error; a model that cannot answer similar-item queries gives 501.
``k`` above the catalog returns every eligible item. Ids are matched as given: unicode, spaces
or ``../`` inside an id (percent-encoded) are just ids the model does not know (404).

State: the model, index and seen items are loaded once, in :func:`create_app`, into one
immutable :class:`ServingState` held at ``app.state.serving``. Every request reads that
reference once and uses only it, so a reload builds a complete new state first and then
swaps the reference (one assignment, atomic): requests in flight finish on the old state,
later ones use the new one, and none fails. A reload that cannot load the directory (a
half-written or corrupt version, a stale saved index) changes nothing and answers 409.
With ``--workers N`` (N >= 2), send SIGHUP to the ``dotrec serve`` process instead: uvicorn
restarts the workers one at a time, so the others keep answering.

Workers: handlers are plain functions, run in the server's thread pool; the search kernels
release the GIL, so requests proceed in parallel, each scanning in its own thread.
``uvicorn --workers N`` starts N processes, each loading its own copy through
:func:`app_from_env` (``dotrec serve --workers N`` sets the environment for it).
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from dotrec._version import __version__
from dotrec.errors import ConfigError, DotrecError, NotSupportedError, UnknownIdError
from dotrec.recommend import Recommender
from dotrec.serve.metrics import Metrics, MetricsMiddleware

#: Largest ``k`` a request may ask for.
MAX_K = 1000
#: Longest user or item id (characters) a request may carry; longer ones are refused (422).
MAX_ID_LENGTH = 512
#: Most users a batch request may carry.
MAX_BATCH_USERS = 1000
#: Most item ids a fold-in request may carry.
MAX_FOLD_IN_ITEMS = 10_000
#: Environment variables read by :func:`app_from_env` (set by ``dotrec serve --workers``).
ENV_MODEL_DIR = "DOTREC_SERVE_MODEL_DIR"
ENV_INDEX = "DOTREC_SERVE_INDEX"
ENV_THREADS = "DOTREC_SERVE_THREADS"
ENV_MMAP = "DOTREC_SERVE_MMAP"

logger = logging.getLogger("dotrec.serve")


@dataclass(frozen=True)
class ServingState:
    """Everything a request needs, loaded together and replaced together."""

    recommender: Recommender
    model_dir: str
    index_kind: str
    loaded_at: float

    @property
    def inline(self) -> bool:
        """Whether a request's search is cheap enough (an approximate index: tens to hundreds
        of microseconds) to run on the event loop itself. Handing it to a worker thread costs
        more than the search (a thread switch and GIL hand-offs per request); exact scans and
        learned-similarity scoring of a large catalog still go to the thread pool, so that one
        of them never holds up the other connections."""
        return self.index_kind in ("hnsw", "ivf", "ivfpq")


T = TypeVar("T")


async def _call(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the event loop when the loaded index is cheap, else in a worker thread."""
    if request.app.state.serving.inline:
        return fn(*args)
    return await run_in_threadpool(fn, *args)


def load_state(
    model_dir: str | os.PathLike[str],
    index_kind: str | None = None,
    threads: int = 1,
    mmap: bool = False,
) -> ServingState:
    """Load the model, its seen items and its index from ``model_dir`` (``mmap``: the model's
    arrays mapped from its file, :meth:`Recommender.from_dir`).

    Ends with a full garbage collection and ``gc.freeze()``: the loaded state holds millions of
    objects (the id tables), and a full collection that walks them takes tens of milliseconds,
    which would otherwise land on whichever request happens to trigger it. Frozen objects are
    still freed by reference counting when a reload drops them.
    """
    rec = Recommender.from_dir(model_dir, index_kind, threads=threads, mmap=mmap).warm()
    gc.collect()
    gc.freeze()
    kind = "score_all" if rec.index is None else rec.index.kind
    return ServingState(rec, str(model_dir), kind, time.time())


class ScoredItem(BaseModel):
    item_id: int | str
    score: float


class Recommendations(BaseModel):
    user_id: str
    k: int
    exclude_seen: bool
    items: list[ScoredItem]


class FoldInRequest(BaseModel):
    items: list[int | str] = Field(
        ..., max_length=MAX_FOLD_IN_ITEMS, description="Item ids the new user interacted with."
    )
    k: int = Field(10, ge=1, le=MAX_K, description=f"Items to return (1..{MAX_K}).")


class BatchRequest(BaseModel):
    users: list[int | str] = Field(
        ..., min_length=1, max_length=MAX_BATCH_USERS, description="Raw user ids."
    )
    k: int = Field(10, ge=1, le=MAX_K, description=f"Items per user (1..{MAX_K}).")
    exclude_seen: bool = Field(True, description="Leave out each user's training items.")


class BatchRecommendations(BaseModel):
    k: int
    exclude_seen: bool
    results: list[Recommendations]


class FoldInRecommendations(BaseModel):
    k: int
    unknown_items: list[int | str]
    items: list[ScoredItem]


class SimilarItems(BaseModel):
    item_id: str
    k: int
    items: list[ScoredItem]


class Health(BaseModel):
    status: str
    model: str
    model_dir: str
    index: str
    n_users: int
    n_items: int
    loaded_at: float
    version: str
    #: The answering worker process (``dotrec serve --workers N`` runs N of them).
    pid: int


class ErrorBody(BaseModel):
    error: str
    detail: str


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address."""
    if host is None:
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def reload_state(app: FastAPI) -> ServingState:
    """Load ``app``'s model directory again and swap the new state in (atomically).

    Raises whatever loading raises, and then the old state stays in place.
    """
    with app.state.reload_lock:  # one reload at a time; requests never take this lock
        old: ServingState = app.state.serving
        kind = None if old.index_kind in ("exact", "score_all") else old.index_kind
        new = load_state(old.model_dir, kind, app.state.threads, app.state.mmap)
        app.state.serving = new
        app.state.metrics.set_info(
            model=new.recommender.model.name,
            index=new.index_kind,
            model_dir=new.model_dir,
            version=__version__,
        )
        return new


def _answer(head: dict[str, Any], item_ids: Any, scores: Any) -> Response:
    """A JSON answer written directly: no per-item pydantic objects, built and validated
    again, on the request path (the endpoint's ``response_model`` still documents it)."""
    items = [{"item_id": i, "score": s} for i, s in zip(item_ids.tolist(), scores.tolist())]
    return Response(orjson.dumps({**head, "items": items}), media_type="application/json")


def create_app(
    model_dir: str | os.PathLike[str],
    index_kind: str | None = None,
    *,
    threads: int = 1,
    mmap: bool = False,
) -> FastAPI:
    """The service for the model in ``model_dir`` (loaded once, here).

    ``index_kind`` picks a saved index for a dot-product model (default: exact search);
    ``threads`` is the number of threads one request's search may use; ``mmap`` maps the
    model's arrays from its file instead of reading them (shared by the workers, and a
    catalog larger than memory stays on disk).
    """
    state = load_state(model_dir, index_kind, threads, mmap)
    metrics = Metrics()
    app = FastAPI(
        title="dotrec",
        version=__version__,
        description="Top-k recommendations from a dotrec model: dot-product models through "
        "maximum inner product search, learned-similarity models by scoring the "
        "whole catalog.",
    )
    app.state.serving = state
    app.state.metrics = metrics
    app.state.threads = threads
    app.state.mmap = mmap
    app.state.reload_lock = threading.Lock()
    metrics.set_info(
        model=state.recommender.model.name,
        index=state.index_kind,
        model_dir=state.model_dir,
        version=__version__,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.exception_handler(UnknownIdError)
    async def _unknown(request: Request, exc: UnknownIdError) -> JSONResponse:
        return JSONResponse(
            status_code=404, content={"error": f"unknown_{exc.entity}", "detail": str(exc)}
        )

    @app.exception_handler(NotSupportedError)
    async def _unsupported(request: Request, exc: NotSupportedError) -> JSONResponse:
        return JSONResponse(status_code=501, content={"error": "not_supported", "detail": str(exc)})

    @app.exception_handler(ConfigError)
    async def _bad_request(request: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"error": "bad_request", "detail": str(exc)})

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not a bad request: logged with its traceback, answered without one.
        logger.exception("unhandled error in %s %s", request.method, request.url.path)
        return JSONResponse(
            status_code=500, content={"error": "internal_error", "detail": type(exc).__name__}
        )

    errors: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorBody, "description": "Unknown id"}
    }
    user_path = Path(
        ..., max_length=MAX_ID_LENGTH, description="Raw user id, as in the training data."
    )
    item_path = Path(..., max_length=MAX_ID_LENGTH, description="Raw item id.")

    @app.get(
        "/users/{user_id}/recommendations",
        response_model=Recommendations,
        responses=errors,
        summary="Top-k items for a user",
    )
    async def recommendations(
        request: Request,
        user_id: str = user_path,
        k: int = Query(10, ge=1, le=MAX_K, description=f"Items to return (1..{MAX_K})."),
        exclude_seen: bool = Query(True, description="Leave out the user's training items."),
    ) -> Response:
        rec: Recommender = request.app.state.serving.recommender
        items, scores = await _call(request, rec.recommend, user_id, k, exclude_seen)
        return _answer({"user_id": user_id, "k": k, "exclude_seen": exclude_seen}, items, scores)

    @app.post(
        "/users/recommendations",
        response_model=BatchRecommendations,
        responses=errors,
        summary="Top-k items for many users in one request (one search for all of them)",
    )
    async def batch(request: Request, body: BatchRequest) -> Response:
        rec: Recommender = request.app.state.serving.recommender
        users = np.array([rec.user_index(u) for u in body.users], dtype=np.int64)
        idx, scores = await _call(request, rec.top_indices, users, body.k, body.exclude_seen)
        results = []
        for user_id, row, sc in zip(body.users, idx, scores):
            keep = row >= 0
            items = rec.items.external(row[keep]).tolist()
            answer = [{"item_id": i, "score": s} for i, s in zip(items, sc[keep].tolist())]
            results.append(
                {
                    "user_id": str(user_id),
                    "k": body.k,
                    "exclude_seen": body.exclude_seen,
                    "items": answer,
                }
            )
        head = {"k": body.k, "exclude_seen": body.exclude_seen, "results": results}
        return Response(orjson.dumps(head), media_type="application/json")

    @app.post(
        "/recommendations",
        response_model=FoldInRecommendations,
        responses={
            422: {"model": ErrorBody, "description": "No known item, or a bad body"},
            501: {"model": ErrorBody, "description": "The model cannot fold in users"},
        },
        summary="Top-k items for a new user, folded in from its items",
    )
    async def fold_in(request: Request, body: FoldInRequest) -> Response:
        rec: Recommender = request.app.state.serving.recommender
        items, scores, unknown = await _call(request, rec.recommend_for_items, body.items, body.k)
        return _answer({"k": body.k, "unknown_items": unknown}, items, scores)

    @app.get(
        "/items/{item_id}/similar",
        response_model=SimilarItems,
        responses={
            **errors,
            501: {"model": ErrorBody, "description": "Model has no item embeddings"},
        },
        summary="Items most similar to an item (cosine of item vectors)",
    )
    def similar(
        request: Request,
        item_id: str = item_path,
        k: int = Query(10, ge=1, le=MAX_K, description=f"Items to return (1..{MAX_K})."),
    ) -> Response:
        rec: Recommender = request.app.state.serving.recommender
        items, scores = rec.similar_items(item_id, k)
        return _answer({"item_id": item_id, "k": k}, items, scores)

    @app.get("/healthz", response_model=Health, summary="Liveness and the loaded model")
    def healthz(request: Request) -> Health:
        s: ServingState = request.app.state.serving
        m = s.recommender.model
        return Health(
            status="ok",
            model=m.name,
            model_dir=s.model_dir,
            index=s.index_kind,
            n_users=m.n_users,
            n_items=m.n_items,
            loaded_at=s.loaded_at,
            version=__version__,
            pid=os.getpid(),
        )

    @app.post(
        "/admin/reload",
        response_model=Health,
        responses={
            403: {"model": ErrorBody, "description": "Not a loopback client"},
            409: {
                "model": ErrorBody,
                "description": "The new version did not load; the old one serves",
            },
        },
        summary="Load the model directory again and swap it in atomically",
    )
    def reload(request: Request) -> Any:
        client = request.client.host if request.client else None
        if not is_loopback(client):
            return JSONResponse(
                status_code=403,
                content={
                    "error": "forbidden",
                    "detail": "reload is accepted from loopback clients only",
                },
            )
        try:
            reload_state(request.app)
        except (DotrecError, OSError, ValueError) as exc:
            logger.warning("reload failed, still serving the previous model: %s", exc)
            return JSONResponse(
                status_code=409, content={"error": "reload_failed", "detail": str(exc)}
            )
        return healthz(request)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        summary="Request counts and latency histograms (Prometheus text format)",
    )
    def prometheus(request: Request) -> PlainTextResponse:
        return PlainTextResponse(
            request.app.state.metrics.render(),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    return app


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` worker processes (reads ``DOTREC_SERVE_*``)."""
    model_dir = os.environ.get(ENV_MODEL_DIR)
    if not model_dir:
        raise ConfigError(f"{ENV_MODEL_DIR} is not set; start the service with `dotrec serve`")
    threads = int(os.environ.get(ENV_THREADS, "1"))
    limit_threads(threads)
    return create_app(
        model_dir,
        os.environ.get(ENV_INDEX) or None,
        threads=threads,
        mmap=os.environ.get(ENV_MMAP) == "1",
    )


def limit_threads(threads: int) -> None:
    """Cap the BLAS and OpenMP pools of this server process at ``threads`` (``--threads``).

    A request's search already runs its own kernels on ``threads``; left alone, a matrix
    product inside it would start a BLAS thread per core, and with ``--workers 2`` on two cores
    the workers' pools fight over them (measured: batch throughput fell from 6x to 2x that of
    single requests). Process-wide, so only the server processes call it.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)

"""ItemIndex: top-k items by ``<p_u, q_i> + b_i`` over a dot-product model's item vectors.

Every backend answers :meth:`ItemIndex.search` the same way: for each query vector ``p_u``
(a row of ``user_factors``) the ``k`` items with the largest ``<p_u, q_i> + b_i``, best first,
never an excluded item, with exact scores; ties go to the lower item index. The user and global
biases are constant per user and left out (see :mod:`dotrec.retrieval.transform`).

Backends
    ``exact``: a full scan (:mod:`dotrec.retrieval.topk`), the reference.
    ``hnsw`` and ``ivf``: faiss approximate indexes (:mod:`dotrec.retrieval.ann`).

Persistence
    :func:`save_index` writes ``MODEL_DIR/index-KIND/`` beside the model: ``index.json``
    (kind, parameters, build report, the sha256 of the model's arrays and of each index file)
    and, for faiss backends, ``index.faiss``. The directory is written in full under a
    temporary name and renamed into place. :func:`load_index` checks every sha256 and that the
    index was built for these very model arrays, so a stale index is refused, not used.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dotrec._version import __version__
from dotrec.artifacts import (
    atomic_write_bytes,
    make_temp_dir,
    read_meta,
    replace_dir,
    sha256_file,
)
from dotrec.errors import ArtifactError, ConfigError
from dotrec.models.base import DotProductModel, Model
from dotrec.random import rng
from dotrec.retrieval import ann as _ann  # noqa: F401  (registers hnsw and ivf)
from dotrec.retrieval.base import INDEXES, RECALL_K, ExactIndex, ItemIndex

INDEX_FORMAT = "dotrec-index"
INDEX_FORMAT_VERSION = 1
INDEX_META = "index.json"


def index_classes() -> dict[str, type[ItemIndex]]:
    """Backends by kind (faiss itself is imported only when an ANN index is built or loaded)."""
    return dict(INDEXES)


INDEX_KINDS = tuple(INDEXES)


def _check_kind(kind: str) -> type[ItemIndex]:
    if kind not in INDEXES:
        raise ConfigError(f"unknown index kind {kind!r}; choose one of {', '.join(INDEXES)}")
    return INDEXES[kind]


def recall_at_k(index: ItemIndex, queries: npt.ArrayLike, k: int = RECALL_K) -> float:
    """Mean ``|top-k(index) ∩ top-k(exact)| / k`` over ``queries`` (no exclusions)."""
    q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    k = min(k, index.n_items)
    if len(q) == 0 or k == 0:
        raise ValueError("recall needs at least one query and one item")
    exact = ExactIndex(index.vectors, index.bias, threads=index.threads)
    truth, _ = exact.search(q, k)
    found, _ = index.search(q, k)
    hits = sum(len(np.intersect1d(t, f[f >= 0], assume_unique=True)) for t, f in zip(truth, found))
    return hits / (k * len(q))


def _check_model(model: Model) -> DotProductModel:
    if not isinstance(model, DotProductModel):
        raise ConfigError(
            f"model {model.name!r} is not a dot-product model: an item index "
            "serves only models whose score is <user vector, item vector>; "
            "learned-similarity models rank through score_all"
        )
    model._check_fitted()
    return model


def build_index(
    model: Model,
    kind: str = "exact",
    *,
    threads: int = 1,
    seed: int = 0,
    recall_queries: int = 1000,
    **params: Any,
) -> ItemIndex:
    """Build a ``kind`` index over a dot-product model's item vectors and measure it.

    ``build_info`` gets the build time, the memory, and recall@10 against ``exact`` on up to
    ``recall_queries`` users drawn with ``seed`` (``exact`` reports 1.0 by definition).
    ``params`` are the backend's keywords (``m``, ``ef_construction``, ``ef_search``;
    ``nlist``, ``nprobe``).
    """
    m = _check_model(model)
    cls = _check_kind(kind)
    if kind != "exact":
        params.setdefault("seed", seed)
    start = time.perf_counter()
    index = cls(m.item_factors, m.item_bias, threads=threads, **params)
    info: dict[str, Any] = {
        "build_seconds": time.perf_counter() - start,
        "memory_bytes": index.memory_bytes(),
    }
    if kind == "exact":
        info[f"recall@{RECALL_K}"] = 1.0
    else:
        n_q = min(m.n_users, recall_queries)
        users = rng(seed, "index_recall").choice(m.n_users, size=n_q, replace=False)
        info[f"recall@{RECALL_K}"] = recall_at_k(index, m.user_factors[np.sort(users)])
        info["recall_queries"] = n_q
    index.build_info = info
    return index


# ---------------------------------------------------------------------------- persistence
def index_path(model_dir: str | os.PathLike[str], kind: str) -> Path:
    """Where a ``kind`` index of the model in ``model_dir`` lives: ``model_dir/index-kind``."""
    return Path(model_dir) / f"index-{kind}"


def _model_sha(model_dir: str | os.PathLike[str]) -> str:
    sha = (read_meta(model_dir).get("arrays") or {}).get("sha256")
    if not isinstance(sha, str):
        raise ArtifactError(f"{model_dir}/model.json: no arrays sha256")
    return sha


def save_index(index: ItemIndex, model_dir: str | os.PathLike[str]) -> Path:
    """Write ``index`` beside the model in ``model_dir`` (atomically) and return its path."""
    target = index_path(model_dir, index.kind)
    meta: dict[str, Any] = {
        "format": INDEX_FORMAT,
        "format_version": INDEX_FORMAT_VERSION,
        "kind": index.kind,
        "params": index.params(),
        "build_info": index.build_info,
        "n_items": index.n_items,
        "dim": index.dim,
        "model_sha256": _model_sha(model_dir),
        "dotrec_version": __version__,
        "files": {},
    }
    tmp = make_temp_dir(target)
    try:
        payload = index._payload()
        if payload is not None:
            atomic_write_bytes(tmp / "index.faiss", payload)
            meta["files"]["index.faiss"] = {"sha256": sha256_file(tmp / "index.faiss")}
        atomic_write_bytes(tmp / INDEX_META, (json.dumps(meta, indent=2) + "\n").encode())
        replace_dir(tmp, target, INDEX_META, INDEX_FORMAT)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def saved_index_kinds(model_dir: str | os.PathLike[str]) -> list[str]:
    """Kinds of the indexes saved beside the model in ``model_dir``."""
    return [k for k in INDEX_KINDS if (index_path(model_dir, k) / INDEX_META).is_file()]


def load_index(
    model_dir: str | os.PathLike[str], kind: str, model: Model, *, threads: int = 1
) -> ItemIndex:
    """Load the ``kind`` index saved beside ``model`` (read from ``model_dir``), no rebuild.

    Raises :class:`ArtifactError` if it is missing, corrupt, or built for other model arrays.
    """
    cls = _check_kind(kind)
    m = _check_model(model)
    folder = index_path(model_dir, kind)
    meta_path = folder / INDEX_META
    if not meta_path.is_file():
        raise ArtifactError(
            f"{folder}: no {kind} index; build one with "
            f"`dotrec index build {model_dir} --kind {kind}`"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{meta_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT or meta.get("kind") != kind:
        raise ArtifactError(f"{meta_path}: not a dotrec {kind} index file")
    if int(meta.get("format_version", 0)) > INDEX_FORMAT_VERSION:
        raise ArtifactError(
            f"{meta_path}: index format {meta.get('format_version')} is newer "
            f"than this dotrec ({__version__}) reads; upgrade dotrec"
        )
    if meta.get("model_sha256") != _model_sha(model_dir):
        raise ArtifactError(
            f"{folder}: built for other model arrays (the model was retrained "
            f"or replaced); rebuild with `dotrec index build {model_dir} "
            f"--kind {kind}`"
        )
    payload = None
    for name, info in (meta.get("files") or {}).items():
        payload = folder / name
        if not payload.is_file() or sha256_file(payload) != (info or {}).get("sha256"):
            raise ArtifactError(
                f"{payload}: missing, or its sha256 does not match "
                f"{INDEX_META}; the file is truncated or was altered"
            )
    index = cls._restore(
        m.item_factors, m.item_bias, dict(meta.get("params") or {}), payload, threads
    )
    index.build_info = dict(meta.get("build_info") or {})
    return index

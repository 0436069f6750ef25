"""Approximate item indexes on faiss: HNSW graphs and IVF cells over bias-folded vectors.

Items are ``[q_i, b_i]`` and queries ``[p_u, 1]`` (:mod:`dotrec.retrieval.transform`). Each
backend takes ``metric``:

``"l2"``
    the MIPS-to-L2 transform: items ``[q_i, b_i, sqrt(M^2 - |(q_i, b_i)|^2)]``, queries
    ``[p_u, 1, 0]``, searched by L2 distance;
``"ip"``
    faiss's inner-product metric on the folded vectors as they are.

Both rank by ``<p_u, q_i> + b_i``; both backends default to ``"l2"``. Measured on item
vectors sampled from trained MF models (docs/serving.md): IVF cells are k-means cells, which
need a metric space, and reach a given recall at a smaller ``nprobe`` after the transform. An
HNSW graph built with inner products does better on small catalogs but its recall stalls as
the catalog grows (10^6 items of dim 64: 0.83 at ``ef_search`` 512; 3 x 10^5: 0.95 at 1024),
while the transformed graph keeps improving with ``ef_search`` (3 x 10^5: 0.98 at 1024).

The candidates faiss returns are re-scored exactly from the item vectors and sorted by
(score, item index), so scores and tie order match :class:`ExactIndex`; only which items are
found can differ (measured as recall against exact at build time).

Excluded items (a user's seen items) are filtered inside faiss's search by an id selector
(``IDSelectorNot(IDSelectorBatch(...))``), one query at a time because a selector holds for a
whole search call, so a heavy user costs a k-neighbour search, not a ``k + |seen|`` one. When
``k + |excluded|`` covers the whole catalog, the search is an exact scan instead (complete, and
cheaper than a graph walk over everything). An IVF search whose
probed cells hold fewer candidates returns fewer than ``k`` items (padded with -1); raise
``nprobe`` if that matters.

Determinism: IVF k-means is seeded; HNSW levels are seeded, but a graph built with more than
one thread depends on thread timing (build with ``threads=1`` for a bit-identical graph).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dotrec._optional import import_optional
from dotrec.errors import ConfigError
from dotrec.random import int_seed
from dotrec.retrieval.base import ItemIndex, register_index
from dotrec.retrieval.topk import topk_candidates, topk_dot
from dotrec.retrieval.transform import fold_items, mips_to_l2_items
from dotrec.validate import check_int

#: ``l2``: MIPS-to-L2 transform, then L2 search; ``ip``: faiss's inner-product metric.
METRICS = ("l2", "ip")


def import_faiss() -> Any:
    """Import faiss, or raise a :class:`ConfigError` that says how to install it."""
    return import_optional(
        "faiss", "the hnsw and ivf indexes", "pip install 'dotrec[ann]' (faiss-cpu)"
    )


class _FaissIndex(ItemIndex):
    """Shared search path: MIPS-to-L2 queries, over-fetch, exact re-scoring."""

    def __init__(
        self,
        item_factors: npt.ArrayLike,
        item_bias: npt.ArrayLike | None = None,
        *,
        threads: int = 1,
    ) -> None:
        super().__init__(item_factors, item_bias, threads=threads)
        self._faiss = import_faiss()
        self._index: Any = None
        self.metric = "l2"

    def _check_metric(self, metric: str) -> str:
        if metric not in METRICS:
            raise ConfigError(f"metric must be 'l2' (MIPS-to-L2 transform) or 'ip', got {metric!r}")
        return metric

    @property
    def _faiss_metric(self) -> int:
        return self._faiss.METRIC_L2 if self.metric == "l2" else self._faiss.METRIC_INNER_PRODUCT

    def _faiss_queries(self, queries: np.ndarray) -> np.ndarray:
        """``[p_u, 1]`` (``ip``) or ``[p_u, 1, 0]`` (``l2``), built in one allocation."""
        out = np.zeros((len(queries), self._index.d), np.float32)
        out[:, : self.dim] = queries
        out[:, self.dim] = 1.0
        return out

    def _build(self) -> None:
        items = fold_items(self.vectors, self.bias)
        if self.metric == "l2":
            items, _ = mips_to_l2_items(items)
        self._faiss.omp_set_num_threads(self.threads)
        index = self._make(items.shape[1])
        if not index.is_trained:
            index.train(items)
        index.add(items)
        self._index = index
        self._apply_search_params()

    @abstractmethod
    def _make(self, dim: int) -> Any:
        """An empty faiss index for vectors of ``dim`` dimensions."""

    @abstractmethod
    def _apply_search_params(self) -> None:
        """Copy the search parameters onto the faiss index."""

    def _payload(self) -> bytes:
        return self._faiss.serialize_index(self._index).tobytes()

    @classmethod
    def _restore(
        cls,
        item_factors: np.ndarray,
        item_bias: np.ndarray,
        params: dict[str, Any],
        payload: Path | None,
        threads: int,
    ) -> ItemIndex:
        if payload is None:
            raise ConfigError(f"a saved {cls.kind} index needs its index.faiss file")
        obj = cls.__new__(cls)
        _FaissIndex.__init__(obj, item_factors, item_bias, threads=threads)
        obj._set_params(**params)
        obj._index = obj._faiss.read_index(str(payload))
        dim = obj.dim + (2 if obj.metric == "l2" else 1)
        if obj._index.ntotal != obj.n_items or obj._index.d != dim:
            raise ConfigError(
                f"{payload}: holds {obj._index.ntotal} vectors of dim "
                f"{obj._index.d}; expected {obj.n_items} of dim {dim}"
            )
        obj._apply_search_params()
        return obj

    @abstractmethod
    def _set_params(self, **params: Any) -> None:
        """Validate and store the constructor parameters."""

    def search(
        self, queries: npt.ArrayLike, k: int, *, exclude: Sequence[npt.ArrayLike] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(k, bool) or int(k) != k or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have dimension {q.shape[1]}, items {self.dim}")
        if exclude is not None and len(exclude) != len(q):
            raise ValueError(f"exclude has {len(exclude)} rows for {len(q)} queries")
        ex = None if exclude is None else [np.asarray(e, dtype=np.int64) for e in exclude]
        most = max((len(e) for e in ex), default=0) if ex else 0
        if int(k) + most >= self.n_items:  # all the catalog: a scan is exact and cheaper
            return topk_dot(q, self.vectors, self.bias, int(k), exclude=ex, threads=self.threads)
        self._faiss.omp_set_num_threads(self.threads)
        fq = self._faiss_queries(q)
        if not most:
            _, ids = self._index.search(fq, int(k))
            return topk_candidates(q, self.vectors, self.bias, ids, int(k))
        assert ex is not None
        # Seen items are filtered inside the search by an id selector, one query at a time (a
        # selector holds for a whole search call), instead of fetching k + |seen| neighbours.
        ids = np.empty((len(q), int(k)), dtype=np.int64)
        for r, e in enumerate(ex):
            if not len(e):
                ids[r] = self._index.search(fq[r : r + 1], int(k))[1][0]
                continue
            selector = self._faiss.IDSelectorNot(self._faiss.IDSelectorBatch(e))
            ids[r] = self._index.search(fq[r : r + 1], int(k), params=self._params(selector))[1][0]
        return topk_candidates(q, self.vectors, self.bias, ids, int(k), exclude=ex)

    @abstractmethod
    def _params(self, selector: Any) -> Any:
        """faiss search parameters with this index's search settings and ``selector``."""


@register_index
class HNSWIndex(_FaissIndex):
    """faiss ``IndexHNSWFlat`` (Malkov & Yashunin 2018) over the bias-folded item vectors.

    Parameters
    ----------
    m : int
        Graph degree (faiss ``M``; level 0 keeps ``2 m`` links). Memory and build time grow
        with it; recall at a given ``ef_search`` too.
    ef_construction : int
        Candidate list size while inserting.
    ef_search : int
        Candidate list size while searching (at least ``k``); trades latency for recall and
        can be changed after the build (:meth:`set_search_params`).
    metric : {"l2", "ip"}
        L2 after the MIPS-to-L2 transform, or inner product (see the module doc).
    seed : int
        Seeds the level of each node.
    threads : int
        Build threads, and threads of one batched search.
    """

    kind = "hnsw"

    def __init__(
        self,
        item_factors: npt.ArrayLike,
        item_bias: npt.ArrayLike | None = None,
        *,
        m: int = 32,
        ef_construction: int = 100,
        ef_search: int = 256,
        metric: str = "l2",
        seed: int = 0,
        threads: int = 1,
    ) -> None:
        super().__init__(item_factors, item_bias, threads=threads)
        self._set_params(
            m=m, ef_construction=ef_construction, ef_search=ef_search, metric=metric, seed=seed
        )
        self._build()

    def _set_params(self, **params: Any) -> None:
        self.m = check_int("m", params["m"])
        self.ef_construction = check_int("ef_construction", params["ef_construction"])
        self.ef_search = check_int("ef_search", params["ef_search"])
        self.metric = self._check_metric(params["metric"])
        self.seed = int(params["seed"])

    def _make(self, dim: int) -> Any:
        index = self._faiss.IndexHNSWFlat(dim, self.m, self._faiss_metric)
        index.hnsw.efConstruction = self.ef_construction
        index.hnsw.rng = self._faiss.RandomGenerator(int_seed(self.seed, "hnsw_levels") % 2**31)
        return index

    def _apply_search_params(self) -> None:
        self._index.hnsw.efSearch = self.ef_search

    def _params(self, selector: Any) -> Any:
        return self._faiss.SearchParametersHNSW(sel=selector, efSearch=self.ef_search)

    def params(self) -> dict[str, Any]:
        return {
            "m": self.m,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "metric": self.metric,
            "seed": self.seed,
        }

    def set_search_params(self, **params: Any) -> None:
        unknown = set(params) - {"ef_search"}
        if unknown:
            raise ConfigError(f"hnsw search parameters: ef_search (got {sorted(unknown)})")
        if "ef_search" in params:
            self.ef_search = check_int("ef_search", params["ef_search"])
            self._apply_search_params()

    def memory_bytes(self) -> int:
        h = self._index.hnsw
        graph = h.neighbors.size() * 4 + h.levels.size() * 4 + h.offsets.size() * 8
        return super().memory_bytes() + self._index.ntotal * self._index.d * 4 + graph


@register_index
class IVFIndex(_FaissIndex):
    """faiss ``IndexIVFFlat``: k-means cells over the bias-folded vectors, ``nprobe`` scanned.

    Parameters
    ----------
    nlist : int, optional
        Number of cells; default ``4 sqrt(n_items)`` (at most ``n_items / 39``, so k-means has
        39 points per centroid).
    nprobe : int, optional
        Cells scanned per query (trades latency for recall; changeable after the build);
        default ``max(min(nlist, 8), nlist // 64)``.
    metric : {"l2", "ip"}
        L2 after the MIPS-to-L2 transform, or inner product (see the module doc).
    seed : int
        Seeds k-means.
    threads : int
    """

    kind = "ivf"

    def __init__(
        self,
        item_factors: npt.ArrayLike,
        item_bias: npt.ArrayLike | None = None,
        *,
        nlist: int | None = None,
        nprobe: int | None = None,
        metric: str = "l2",
        seed: int = 0,
        threads: int = 1,
    ) -> None:
        super().__init__(item_factors, item_bias, threads=threads)
        if nlist is None:
            nlist = int(max(1, min(4 * np.sqrt(self.n_items), self.n_items // 39)))
        if nprobe is None:
            nprobe = max(min(int(nlist), 8), int(nlist) // 64)
        self._set_params(nlist=nlist, nprobe=nprobe, metric=metric, seed=seed)
        if self.nlist > self.n_items:
            raise ConfigError(f"nlist={self.nlist} exceeds the {self.n_items} items")
        self._build()

    def _set_params(self, **params: Any) -> None:
        self.nlist = check_int("nlist", params["nlist"])
        self.nprobe = check_int("nprobe", params["nprobe"])
        self.metric = self._check_metric(params["metric"])
        self.seed = int(params["seed"])

    def _make(self, dim: int) -> Any:
        quantizer = (
            self._faiss.IndexFlatL2(dim) if self.metric == "l2" else self._faiss.IndexFlatIP(dim)
        )
        index = self._faiss.IndexIVFFlat(quantizer, dim, self.nlist, self._faiss_metric)
        index.cp.seed = int_seed(self.seed, "ivf_kmeans") % 2**31
        self._quantizer = quantizer  # the IVF index does not own it; keep it alive
        return index

    def _apply_search_params(self) -> None:
        self._index.nprobe = min(self.nprobe, self.nlist)

    def _params(self, selector: Any) -> Any:
        return self._faiss.SearchParametersIVF(sel=selector, nprobe=min(self.nprobe, self.nlist))

    def params(self) -> dict[str, Any]:
        return {
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "metric": self.metric,
            "seed": self.seed,
        }

    def set_search_params(self, **params: Any) -> None:
        unknown = set(params) - {"nprobe"}
        if unknown:
            raise ConfigError(f"ivf search parameters: nprobe (got {sorted(unknown)})")
        if "nprobe" in params:
            self.nprobe = check_int("nprobe", params["nprobe"])
            self._apply_search_params()

    def memory_bytes(self) -> int:
        n, d = self._index.ntotal, self._index.d
        return super().memory_bytes() + n * (d * 4 + 8) + self.nlist * d * 4

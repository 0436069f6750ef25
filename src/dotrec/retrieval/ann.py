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
whole search call, so a heavy user costs a k-neighbour search, not a ``k + |seen|`` one. IVF
indexes scan their probed cells exhaustively, so for queries with at most ``OVERFETCH_MAX``
excluded items they instead run one search for the whole batch, keep each query's first
``k + |excluded|`` neighbours (a superset of what the selector search returns) and drop the
excluded ones: the same answer for one user alone or in a batch, without a selector per query.
When ``k + |excluded|`` covers the whole catalog, the search is an exact scan instead
(complete, and cheaper than a graph walk over everything). An IVF search whose probed cells
hold fewer candidates returns fewer than ``k`` items (padded with -1); raise ``nprobe`` if
that matters.

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
from dotrec.random import int_seed, rng
from dotrec.retrieval.base import ItemIndex, register_index
from dotrec.retrieval.topk import topk_candidates, topk_dot, topk_rows
from dotrec.retrieval.transform import fold_items, mips_to_l2_items
from dotrec.validate import check_int

#: ``l2``: MIPS-to-L2 transform, then L2 search; ``ip``: faiss's inner-product metric.
METRICS = ("l2", "ip")
#: Up to this many excluded items per query, IVF indexes over-fetch instead of using a selector.
OVERFETCH_MAX = 256


def import_faiss() -> Any:
    """Import faiss, or raise a :class:`ConfigError` that says how to install it."""
    return import_optional(
        "faiss", "the hnsw and ivf indexes", "pip install 'dotrec[ann]' (faiss-cpu)"
    )


class _FaissIndex(ItemIndex):
    """Shared search path: MIPS-to-L2 queries, over-fetch, exact re-scoring."""

    #: Whether a search scans its candidate set exhaustively in distance order (IVF cells), so
    #: that over-fetching by the excluded items and dropping them equals a selector search.
    _exhaustive_cells = False

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
        obj._index = obj._adopt(obj._faiss.read_index(str(payload)))
        dim = obj._faiss_dim()
        if obj._index.ntotal != obj.n_items or obj._index.d != dim:
            raise ConfigError(
                f"{payload}: holds {obj._index.ntotal} vectors of dim "
                f"{obj._index.d}; expected {obj.n_items} of dim {dim}"
            )
        obj._apply_search_params()
        return obj

    def _adopt(self, loaded: Any) -> Any:
        """The searched faiss index out of the one read from a saved payload."""
        return loaded

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
        fetch = min(self._fetch(int(k)), self.n_items)
        if not most:
            ids = self._neighbours(fq, fetch)
            return self._rescore(q, ids, int(k), None)
        assert ex is not None
        if self._exhaustive_cells and most <= OVERFETCH_MAX:
            # One search for the whole batch: each query keeps its first fetch + |excluded|
            # neighbours, which hold every one that a selector search would return (the
            # probed cells are scanned exhaustively, in distance order), then drops the excluded.
            ids = self._neighbours(fq, min(fetch + most, self.n_items))
            for r, e in enumerate(ex):
                ids[r, fetch + len(e) :] = -1
            return self._rescore(q, ids, int(k), ex)
        # Seen items are filtered inside the search by an id selector, one query at a time (a
        # selector holds for a whole search call), instead of fetching k + |seen| neighbours.
        ids = np.empty((len(q), fetch), dtype=np.int64)
        for r, e in enumerate(ex):
            if not len(e):
                ids[r] = self._neighbours(fq[r : r + 1], fetch)[0]
                continue
            selector = self._faiss.IDSelectorNot(self._faiss.IDSelectorBatch(e))
            ids[r] = self._neighbours(fq[r : r + 1], fetch, self._params(selector))[0]
        return self._rescore(q, ids, int(k), ex)

    def _fetch(self, k: int) -> int:
        """Candidates to ask faiss for, re-scored exactly to give the top ``k``."""
        return k

    def _rescore(
        self, q: np.ndarray, ids: np.ndarray, k: int, exclude: list[np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` of each query's candidate ``ids`` (-1 padded), scored from the vectors."""
        return topk_candidates(q, self.vectors, self.bias, ids, k, exclude=exclude)

    def _neighbours(self, fq: np.ndarray, k: int, params: Any = None) -> np.ndarray:
        """faiss's ``k`` nearest item ids of the prepared queries ``fq`` (-1 padded)."""
        return np.asarray(self._index.search(fq, k, params=params)[1])

    def _faiss_dim(self) -> int:
        """Dimension of the vectors inside the faiss index."""
        return self.dim + (2 if self.metric == "l2" else 1)

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


class _CellsIndex(_FaissIndex):
    """IVF indexes: cells probed in full, and the cells of a query found by one matrix product.

    faiss's flat coarse quantizer keeps a heap per query over every centroid, which costs more
    than the product itself (measured: 2.5 ms for 100 queries over 4,000 centroids against
    0.8 ms for numpy's product, on one thread); the cells are chosen here with the product and
    a partial sort, and the search runs on them (``search_preassigned``). Same cells, same
    distances, so the same answers as faiss's own path, for one query or a batch.
    """

    _exhaustive_cells = True
    _centroids: np.ndarray | None = None
    nlist: int
    nprobe: int

    def _default_cells(self, nlist: int | None, nprobe: int | None) -> tuple[int, int]:
        """``nlist`` default ``4 sqrt(n_items)`` (at most ``n_items / 39``: 39 k-means points per
        centroid), ``nprobe`` default ``max(min(nlist, 8), nlist // 64)``."""
        if nlist is None:
            nlist = int(max(1, min(4 * np.sqrt(self.n_items), self.n_items // 39)))
        if nprobe is None:
            nprobe = max(min(int(nlist), 8), int(nlist) // 64)
        return nlist, nprobe

    def _apply_search_params(self) -> None:
        self._index.nprobe = min(self.nprobe, self.nlist)
        self._prepare_cells()

    def _params(self, selector: Any) -> Any:
        return self._faiss.SearchParametersIVF(sel=selector, nprobe=min(self.nprobe, self.nlist))

    def _prepare_cells(self) -> None:
        """Cache the centroids and their squared norms (flat quantizers only)."""
        faiss = self._faiss
        ivf = faiss.extract_index_ivf(self._index)
        if isinstance(faiss.downcast_index(ivf.quantizer), faiss.IndexFlat):
            c = ivf.quantizer.reconstruct_n(0, ivf.nlist)
            self._centroids = np.ascontiguousarray(c, dtype=np.float32)
            self._centroid_sq = np.einsum("ij,ij->i", c, c).astype(np.float32)
        else:  # an HNSW graph over the centroids: its candidate list must cover nprobe cells
            self._centroids = None
            graph = faiss.downcast_index(ivf.quantizer)
            graph.hnsw.efSearch = max(64, 2 * min(self.nprobe, self.nlist))

    def _neighbours(self, fq: np.ndarray, k: int, params: Any = None) -> np.ndarray:
        if self._centroids is None:
            return super()._neighbours(fq, k, params)
        nprobe = min(self.nprobe, len(self._centroids))
        sq = np.einsum("ij,ij->i", fq, fq)[:, None]
        dist = sq + self._centroid_sq - 2.0 * (fq @ self._centroids.T)
        # nearest cells first (the numba top-k: numpy's argpartition is slower than the heap)
        cells, neg = topk_rows(-dist, nprobe)
        cell_dist = np.ascontiguousarray(-neg, dtype=np.float32)
        n = len(fq)
        fq = np.ascontiguousarray(fq, dtype=np.float32)
        dist_out = np.empty((n, k), np.float32)
        ids = np.empty((n, k), np.int64)
        ptr = self._faiss.swig_ptr
        # the C++ call: faiss's Python wrapper of search_preassigned takes no search parameters
        self._index.search_preassigned_c(
            n, ptr(fq), k, ptr(cells), ptr(cell_dist), ptr(dist_out), ptr(ids), False, params
        )
        return ids


@register_index
class IVFIndex(_CellsIndex):
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
        nlist, nprobe = self._default_cells(nlist, nprobe)
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


@register_index
class IVFPQIndex(_CellsIndex):
    """faiss ``IndexIVFPQ``: k-means cells holding product-quantized codes, for catalogs of
    10^7 to 10^8 items whose vectors would not fit in memory as an IVF-flat or HNSW index.

    Each item is stored as ``m`` bytes (one 8-bit code per sub-vector of its residual to its
    cell's centroid; fewer bits for a catalog of under 256 items) plus its 8-byte id, instead
    of ``4 (d + 2)`` bytes of floats. A query scans ``nprobe`` cells by table look-ups, takes
    the ``refine * k`` best codes and re-scores them exactly from the item vectors (which may
    be a read-only ``numpy.memmap`` of a file: only the candidates' rows are read), so the
    answer's scores and tie order are exact and only which items are found can differ.

    Where the vectors do not fit in memory (10^8 items of d = 64 are 25.6 GB), each candidate
    read from the file is a random disk read. ``rescore="sq8"`` keeps instead an 8-bit scalar
    code of every vector in memory (one byte per dimension, faiss ``IndexScalarQuantizer``)
    and re-scores the candidates from those: thousands of candidates per query in a
    millisecond, with scores that are those of the codes (within about 1% of the exact ones),
    so near-ties can swap.

    The build never holds all transformed vectors: the largest norm (for the MIPS-to-L2
    transform) is read in one pass, k-means and the codebooks are trained on a seeded sample of
    ``train_size`` items, and items are encoded and added ``chunk`` rows at a time. Vectors are
    zero-padded to a multiple of ``m`` dimensions (zeros change no L2 distance).

    Parameters
    ----------
    nlist : int, optional
        Number of cells; default ``4 sqrt(n_items)`` (at most ``n_items / 39``).
    m : int, optional
        Sub-quantizers (bytes per item); default ``ceil((d + 2) / 2)``, two dimensions each.
    nprobe : int, optional
        Cells scanned per query; default ``max(min(nlist, 8), nlist // 64)``.
    refine : int
        Candidates re-scored per result (``refine * k``); 1 ranks by the codes alone.
    rescore : {"exact", "sq8"}
        Re-score the candidates from the item vectors (exact), or from 8-bit codes held in
        memory (see above).
    quantizer : {"auto", "flat", "hnsw"}
        How a vector finds its cells: an exact scan of the centroids, or an HNSW graph over them
        (the usual choice for ``nlist`` above about 2^14, where scanning dominates the cost of a
        query and of the build); ``auto`` picks ``hnsw`` above 16,384 cells.
    train_size : int, optional
        Items sampled (with ``seed``) to train k-means and the codebooks; default
        ``min(n_items, max(64 nlist, 65,536))``.
    chunk : int
        Rows transformed and added at a time during the build (bounds its extra memory).
    seed : int
        Seeds the training sample and k-means.
    threads : int
    """

    kind = "ivfpq"

    def __init__(
        self,
        item_factors: npt.ArrayLike,
        item_bias: npt.ArrayLike | None = None,
        *,
        nlist: int | None = None,
        m: int | None = None,
        nprobe: int | None = None,
        refine: int = 10,
        rescore: str = "exact",
        quantizer: str = "auto",
        train_size: int | None = None,
        chunk: int = 1 << 18,
        seed: int = 0,
        threads: int = 1,
    ) -> None:
        super().__init__(item_factors, item_bias, threads=threads)
        nlist, nprobe = self._default_cells(nlist, nprobe)
        if m is None:
            m = -(-(self.dim + 2) // 2)
        if train_size is None:
            train_size = min(self.n_items, max(64 * int(nlist), 65_536))
        self._set_params(
            nlist=nlist,
            m=m,
            nprobe=nprobe,
            refine=refine,
            rescore=rescore,
            quantizer=quantizer,
            train_size=train_size,
            chunk=chunk,
            seed=seed,
        )
        if self.nlist > self.n_items or not 2 <= self.train_size <= self.n_items:
            raise ConfigError(
                f"nlist={self.nlist} and train_size={self.train_size} must not exceed the "
                f"{self.n_items} items (and train_size must be at least 2)"
            )
        if self.train_size < self.nlist:
            raise ConfigError(
                f"train_size={self.train_size} is below the {self.nlist} points that k-means "
                "needs for its cells"
            )
        self._build()

    def _set_params(self, **params: Any) -> None:
        self.nlist = check_int("nlist", params["nlist"])
        self.m = check_int("m", params["m"])
        self.nprobe = check_int("nprobe", params["nprobe"])
        self.refine = check_int("refine", params["refine"])
        self.rescore = str(params.get("rescore", "exact"))  # absent in indexes saved before it
        if self.rescore not in ("exact", "sq8"):
            raise ConfigError(f"rescore must be exact or sq8, got {self.rescore!r}")
        self._store: Any = None
        self._codes: np.ndarray | None = None
        self._decode: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
        self.train_size = check_int("train_size", params["train_size"])
        self.chunk = check_int("chunk", params["chunk"])
        if params["quantizer"] not in ("auto", "flat", "hnsw"):
            raise ConfigError(f"quantizer must be auto, flat or hnsw, got {params['quantizer']!r}")
        self.quantizer = str(params["quantizer"])
        self.seed = int(params["seed"])
        self.metric = "l2"

    def _faiss_dim(self) -> int:
        return -(-(self.dim + 2) // self.m) * self.m

    @property
    def _code_bits(self) -> int:
        """8 bits per code (256 centroids per sub-vector), fewer when the training sample is
        smaller than that (a catalog of under 256 items)."""
        return min(8, self.train_size.bit_length() - 1)

    def _fetch(self, k: int) -> int:
        return k * self.refine

    def _rows(self, rows: slice | np.ndarray, max_sq: float) -> np.ndarray:
        """Items ``rows`` folded, MIPS-to-L2 transformed and zero-padded (float32)."""
        v = self.vectors[rows]
        out = np.zeros((len(v), self._faiss_dim()), np.float32)
        out[:, : self.dim] = v
        out[:, self.dim] = self.bias[rows]
        sq = np.einsum("ij,ij->i", out, out, dtype=np.float64)
        out[:, self.dim + 1] = np.sqrt(np.maximum(max_sq - sq, 0.0))
        return out

    def _make(self, dim: int) -> Any:
        faiss = self._faiss
        hnsw = self.quantizer == "hnsw" or (self.quantizer == "auto" and self.nlist > 16_384)
        coarse = faiss.IndexHNSWFlat(dim, 32) if hnsw else faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFPQ(coarse, dim, self.nlist, self.m, self._code_bits)
        index.cp.seed = int_seed(self.seed, "ivfpq_kmeans") % 2**31
        index.pq.cp.seed = int_seed(self.seed, "ivfpq_codebooks") % 2**31
        return index

    def _max_sq(self) -> float:
        """The largest squared norm of a bias-folded item vector, read in one pass."""
        max_sq = 0.0
        for s in range(0, self.n_items, self.chunk):
            v = np.asarray(self.vectors[s : s + self.chunk], dtype=np.float64)
            b = np.asarray(self.bias[s : s + self.chunk], dtype=np.float64)
            max_sq = max(max_sq, float((np.einsum("ij,ij->i", v, v) + b * b).max()))
        return max_sq

    def _training_rows(self, max_sq: float) -> np.ndarray:
        """The transformed vectors of the seeded training sample."""
        n, step = self.n_items, self.chunk
        pick = np.sort(rng(self.seed, "ivfpq_train").choice(n, self.train_size, replace=False))
        return np.concatenate(
            [self._rows(pick[s : s + step], max_sq) for s in range(0, len(pick), step)]
        )

    def _new_store(self, train: np.ndarray) -> Any:
        """A trained 8-bit store with room for every item's code, filled by :meth:`_encode`.

        The code buffer is sized once: faiss's ``add`` grows it by doubling, which at 10^8
        items held twice the store's 6.6 GB at the end of the build.
        """
        faiss = self._faiss
        store = faiss.IndexScalarQuantizer(train.shape[1], faiss.ScalarQuantizer.QT_8bit)
        store.train(train)
        store.codes.resize(self.n_items * store.code_size)
        return store

    def _code_view(self, store: Any) -> np.ndarray:
        """``store``'s code buffer as an (n_items, code size) uint8 view (no copy)."""
        n, size = self.n_items, store.code_size
        view: np.ndarray = self._faiss.rev_swig_ptr(store.codes.data(), n * size)
        return view.reshape(n, size)

    def _encode(self, store: Any, start: int, rows: np.ndarray) -> None:
        """Write the codes of ``rows`` (items ``start``...) into ``store``'s buffer."""
        self._code_view(store)[start : start + len(rows)] = store.sa_encode(rows)
        store.ntotal = start + len(rows)

    def add_sq8_store(self) -> None:
        """Build the in-memory 8-bit re-scoring store of an index built with
        ``rescore="exact"`` and switch to it (the codes and cells are not rebuilt)."""
        if self._store is not None:
            return
        self._faiss.omp_set_num_threads(self.threads)
        max_sq = self._max_sq()
        store = self._new_store(self._training_rows(max_sq))
        for s in range(0, self.n_items, self.chunk):
            self._encode(store, s, self._rows(slice(s, s + self.chunk), max_sq))
        self._store, self.rescore = store, "sq8"

    def _build(self) -> None:
        faiss = self._faiss
        faiss.omp_set_num_threads(self.threads)
        n, step = self.n_items, self.chunk
        max_sq = self._max_sq()
        dim = self._faiss_dim()
        index = self._make(dim)
        # k-means assigns by an exact scan of the centroids even with an HNSW quantizer, whose
        # graph is then built once over the final centroids (faiss's train_q1).
        scan = faiss.IndexFlatL2(dim)
        index.clustering_index = scan
        train = self._training_rows(max_sq)
        index.train(train)
        store = self._new_store(train) if self.rescore == "sq8" else None
        del train
        index.clustering_index = None
        self._index = index
        self._apply_search_params()
        if self._centroids is None:
            # An add needs only each item's nearest cell: a short candidate list finds it
            # (measured at 32,768 cells, 2 threads: 11 us per item at 16, 38 us at 64, so a
            # 10^8-item build spends 18 min instead of an hour assigning cells).
            graph = self._faiss.downcast_index(self._faiss.extract_index_ivf(index).quantizer)
            graph.hnsw.efSearch = 16
        for s in range(0, n, step):
            rows = self._rows(slice(s, s + step), max_sq)
            index.add(rows)
            if store is not None:
                self._encode(store, s, rows)
        self._store = store
        self._apply_search_params()

    def _rescore(
        self, q: np.ndarray, ids: np.ndarray, k: int, exclude: list[np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        if self._store is None:
            return super()._rescore(q, ids, k, exclude)
        ids = ids.copy()
        if exclude is not None:
            for r, e in enumerate(exclude):
                ids[r, np.isin(ids[r], e)] = -1
        # Each row's candidates in item order, so that positions in the decoded block break
        # ties as item indices do; then the decoded codes stand in for the vectors.
        ids.sort(axis=1)
        valid = ids >= 0
        flat = ids[valid]
        codes, low, step = self._store_codes()
        decoded = low + codes[flat].astype(np.float32) * step
        pos = np.full(ids.shape, -1, dtype=np.int64)
        pos[valid] = np.arange(len(flat))
        top, scores = topk_candidates(
            q, np.ascontiguousarray(decoded[:, : self.dim]), decoded[:, self.dim].copy(), pos, k
        )
        return np.where(top >= 0, flat[np.maximum(top, 0)], -1), scores

    def _store_codes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The store's codes (:meth:`_code_view`) and the decoding ``x = low + code * step``
        of faiss's 8-bit quantizer (``vmin + (code + 0.5) / 255 * vdiff`` per dimension).
        Decoding the rows here costs a fraction of faiss's ``reconstruct_batch``, which decodes
        one row per call."""
        if self._codes is None:
            st = self._store
            self._codes = self._code_view(st)
            trained = self._faiss.vector_to_array(st.sq.trained).astype(np.float32)
            vmin, vdiff = trained[: st.d], trained[st.d :]
            self._decode = (vmin + 0.5 / 255 * vdiff, vdiff / 255)
        return self._codes, *self._decode

    def _payload(self) -> bytes:
        if self._store is None:
            return super()._payload()
        # One faiss file for both: IndexRefine is only the container here (it does not own
        # them, and dotrec runs its own search path).
        both = self._faiss.IndexRefine(self._index, self._store)
        return self._faiss.serialize_index(both).tobytes()

    def _adopt(self, loaded: Any) -> Any:
        faiss = self._faiss
        if not isinstance(loaded, faiss.IndexRefine):
            if self.rescore == "sq8":
                raise ConfigError("the saved ivfpq index has no sq8 store; rebuild it")
            return loaded
        self._container = loaded  # owns both; the two below are views into it
        self._store, self.rescore = faiss.downcast_index(loaded.refine_index), "sq8"
        return faiss.downcast_index(loaded.base_index)

    def params(self) -> dict[str, Any]:
        return {
            "nlist": self.nlist,
            "m": self.m,
            "nprobe": self.nprobe,
            "refine": self.refine,
            "rescore": self.rescore,
            "quantizer": self.quantizer,
            "train_size": self.train_size,
            "chunk": self.chunk,
            "seed": self.seed,
        }

    def set_search_params(self, **params: Any) -> None:
        unknown = set(params) - {"nprobe", "refine"}
        if unknown:
            raise ConfigError(f"ivfpq search parameters: nprobe, refine (got {sorted(unknown)})")
        if "nprobe" in params:
            self.nprobe = check_int("nprobe", params["nprobe"])
            self._apply_search_params()
        if "refine" in params:
            self.refine = check_int("refine", params["refine"])

    def index_bytes(self) -> int:
        """Bytes of the faiss index alone: codes, ids, centroids (and their graph), codebooks."""
        idx = self._index
        coarse = self.nlist * idx.d * 4
        if isinstance(self._faiss.downcast_index(idx.quantizer), self._faiss.IndexHNSWFlat):
            coarse += self.nlist * (2 * 32 * 4 + 8)  # level-0 links and offsets
        store = 0 if self._store is None else self._store.ntotal * self._store.code_size
        return idx.ntotal * (idx.code_size + 8) + coarse + idx.pq.centroids.size() * 4 + store

    def memory_bytes(self) -> int:
        return super().memory_bytes() + self.index_bytes()

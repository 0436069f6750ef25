"""The serving-cost benchmark: MIPS (exact, HNSW, IVF) against NeuMF's whole-catalog scoring.

Procedure (``dotrec bench serving``)
    1. Measure the machine's memory read bandwidth (a streaming sum over 1 GiB, best of 5) with
       1 thread and with ``threads``.
    2. Take a trained dot-product model (or train a quick MF on the built-in synthetic data)
       and, for each catalog size, draw item vectors ``[q_i, b_i]`` and query vectors ``p_u``
       from its factor distribution (:func:`sample_vectors`: a smoothed bootstrap, which keeps
       the spread of norms that makes MIPS hard).
    3. For each method, under the same thread settings (numba, faiss/OpenMP, BLAS, torch):
       build time and memory; recall@10 against exact on ``recall_queries`` queries; single-
       query latency (median, p99) with 1 thread; batched queries per second with
       ``threads``. ANN search parameters (``ef_search``, ``nprobe``) are swept on the built
       index; the reported operating point is the cheapest setting with recall@10 >= the
       target (0.95).
    4. NeuMF (:class:`dotrec.models.ncf.NeuMF`, seeded random weights: cost does not depend on
       their values) scores the whole catalog for one user through its own ``score_all``,
       which precomputes the item half of the first MLP layer and the GMF item table, then
       takes the exact top-10. Its embeddings have the dot model's width.
    5. Fit the growth exponent of median single-query latency against catalog size (least
       squares on log-log) per method; write a table, a JSON file and a log-log plot.

Timings depend on the machine and on what else runs on it; the JSON records the load average
before and after each size.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np

from dotrec._numba import numba_threads
from dotrec._version import __version__
from dotrec.artifacts import atomic_write_bytes
from dotrec.data.interactions import Interactions
from dotrec.errors import ConfigError
from dotrec.machine import machine_info
from dotrec.models.base import DotProductModel, Model
from dotrec.random import rng
from dotrec.retrieval.index import ExactIndex, ItemIndex, index_classes
from dotrec.retrieval.topk import topk_rows
from dotrec.retrieval.transform import fold_items

#: Methods the benchmark knows: name -> (index kind, fixed build parameters).
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "exact": ("exact", {}),
    "hnsw": ("hnsw", {}),
    "hnsw-ip": ("hnsw", {"metric": "ip"}),
    "ivf": ("ivf", {}),
    "ivf-ip": ("ivf", {"metric": "ip"}),
    "neumf": ("neumf", {}),
}
EF_SWEEP = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
NPROBE_SWEEP = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


@dataclass(frozen=True)
class ServingBenchConfig:
    """Parameters of :func:`run_serving_bench`."""

    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    dim: int = 64
    threads: int = 2
    methods: tuple[str, ...] = ("exact", "hnsw", "ivf", "neumf")
    k: int = 10
    recall_target: float = 0.95
    recall_queries: int = 1000
    latency_queries: int = 1000
    #: Seconds of single-query timing per method and setting (at least 20 queries).
    latency_budget: float = 5.0
    batch_queries: int = 2048
    batch_size: int = 256
    #: Bytes streamed by the bandwidth measurement (larger than every cache).
    bandwidth_bytes: int = 1 << 30
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.sizes or min(self.sizes) < 100:
            raise ConfigError("sizes must be catalog sizes >= 100")
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ConfigError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
        if self.threads < 1 or self.dim < 2 or self.k < 1:
            raise ConfigError("threads and k must be >= 1, dim >= 2")


# ---------------------------------------------------------------------------- catalogs
def _vector_chunks(
    source: np.ndarray, n: int, seed: int, purpose: str, bandwidth: float, chunk: int
) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, rows)`` chunks of :func:`sample_vectors` (float64), in order."""
    x = np.asarray(source, dtype=np.float64)
    mu = x.mean(axis=0)
    cov = np.cov(x, rowvar=False) + 1e-9 * np.eye(x.shape[1])
    chol = np.linalg.cholesky(cov)
    r = rng(seed, purpose)
    scale = 1.0 / np.sqrt(1.0 + bandwidth**2)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        rows = x[r.integers(0, len(x), m)]
        z = r.standard_normal((m, x.shape[1])) @ chol.T
        yield s, mu + (rows - mu + bandwidth * z) * scale


def sample_vectors(
    source: np.ndarray,
    n: int,
    seed: int,
    purpose: str,
    bandwidth: float = 0.5,
    chunk: int = 1 << 18,
) -> np.ndarray:
    """``n`` float32 rows drawn from the distribution of the rows of ``source``.

    A smoothed bootstrap with its variance kept: ``mu + (x_a - mu + h z) / sqrt(1 + h^2)``
    with ``x_a`` a random row, ``z ~ N(0, Sigma)`` (``Sigma`` the rows' covariance) and
    ``h = bandwidth``. Mean and covariance match ``source``; the norm spread of its rows (what
    makes MIPS hard) is kept, unlike a plain Gaussian fit, whose norms concentrate.
    """
    out = np.empty((n, np.shape(source)[1]), np.float32)
    for s, rows in _vector_chunks(source, n, seed, purpose, bandwidth, chunk):
        out[s : s + len(rows)] = rows
    return out


def sample_catalog(
    model: DotProductModel, n_items: int, n_queries: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Item factors (n_items x d), item bias (n_items,) and query vectors (n_queries x d)."""
    items = sample_vectors(
        fold_items(model.item_factors, model.item_bias), n_items, seed, "bench_items"
    )
    queries = sample_vectors(model.user_factors, n_queries, seed, "bench_queries")
    return np.ascontiguousarray(items[:, :-1]), np.ascontiguousarray(items[:, -1]), queries


def stream_catalog(
    model: DotProductModel, n_items: int, path: Path, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The items of :func:`sample_catalog` written chunk by chunk to the ``.npy`` file ``path``:
    returns its factors as a read-only memmap (n_items x d) and the bias in memory. A catalog of
    10^8 items of dim 64 (25.6 GB) never sits in memory; the rows equal ``sample_catalog``'s."""
    source = fold_items(model.item_factors, model.item_bias)
    d = source.shape[1] - 1
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_items, d))
    bias = np.empty(n_items, np.float32)
    for s, rows in _vector_chunks(source, n_items, seed, "bench_items", 0.5, 1 << 18):
        out[s : s + len(rows)] = rows[:, :-1]
        bias[s : s + len(rows)] = rows[:, -1]
    out.flush()
    del out
    return np.load(path, mmap_mode="r"), bias


def quick_model(dim: int, seed: int = 0) -> tuple[DotProductModel, str]:
    """An MF with ``dim`` factors (``embedding_dim = dim + 1``, the bias counted) trained on the
    built-in synthetic data (a few seconds)."""
    from dotrec.data.synthetic import SyntheticConfig, generate
    from dotrec.models.mf import MatrixFactorization

    cfg = SyntheticConfig(seed=seed)
    model = MatrixFactorization(
        embedding_dim=dim + 1, epochs=20, learning_rate=0.02, seed=seed, threads=1
    ).fit(generate(cfg))
    return model, f"MF(embedding_dim={dim + 1}, epochs=20, learning_rate=0.02) on synthetic"


def catalog_model(
    n_items: int,
    n_users: int,
    dim: int = 64,
    seen_per_user: int = 20,
    seed: int = 0,
    items: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[DotProductModel, Interactions]:
    """A servable MF over a synthetic catalog, and the training interactions to save with it.

    Item vectors and bias are :func:`sample_catalog`'s (or ``items``, e.g. the memmap of
    :func:`stream_catalog`), user vectors are drawn from the quick MF's users the same way, and
    every user has ``seen_per_user`` distinct training items drawn uniformly (seeded), which
    serving filters out. Ids are the integers ``0..n-1``. Nothing is trained: the model exists
    to measure serving (``benchmarks/http_serving.py``, ``benchmarks/large_catalog.py``).
    """
    from dotrec.models.mf import MatrixFactorization

    base, _ = quick_model(dim, seed)
    vectors, bias = items if items is not None else sample_catalog(base, n_items, 1, seed)[:2]
    if vectors.shape != (n_items, dim) or bias.shape != (n_items,):
        raise ConfigError(f"items must be {n_items} x {dim} with a bias each")
    r = rng(seed, "catalog_seen")
    per = min(seen_per_user, n_items)
    seen = (
        np.concatenate([np.sort(r.choice(n_items, per, replace=False)) for _ in range(n_users)])
        if n_users * per <= 1 << 24
        else r.integers(0, n_items, n_users * per)
    )
    train = Interactions.from_indices(
        np.repeat(np.arange(n_users), per),
        seen,
        n_users=n_users,
        n_items=n_items,
        warn_duplicates=False,
    )
    model = MatrixFactorization(embedding_dim=dim + 1, seed=seed)
    model.n_users, model.n_items = n_users, n_items
    model.user_factors = sample_vectors(base.user_factors, n_users, seed, "catalog_users")
    model.item_factors = vectors
    model.user_bias = np.zeros(n_users, np.float32)
    model.item_bias = np.asarray(bias, np.float32)
    model.global_bias = np.float32(0.0)
    model.train_fingerprint = train.fingerprint()
    model.fit_info = {"synthetic_catalog": True}
    return model, train


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"1e4,1e5,1e6"`` -> (10000, 100000, 1000000)."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or any(v != int(v) or v < 1 for v in values):
        raise ConfigError(f"--sizes: expected whole numbers such as 1e4,1e5,1e6, got {text!r}")
    return tuple(int(v) for v in values)


# ---------------------------------------------------------------------------- machine
@numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
def _read_sum(a: np.ndarray, parts: int) -> float:  # pragma: no cover - compiled
    per = (len(a) + parts - 1) // parts
    out = np.zeros(parts, np.float32)
    for p in numba.prange(parts):
        chunk = a[p * per : min(len(a), (p + 1) * per)]
        s = np.float32(0.0)
        for i in range(len(chunk)):
            s += chunk[i]
        out[p] = s
    return float(out.sum())


def memory_bandwidth(threads: int, n_bytes: int = 1 << 30, repeats: int = 5) -> float:
    """Read bandwidth in bytes/s: best of ``repeats`` streaming sums over ``n_bytes``."""
    a = np.ones(n_bytes // 4, np.float32)
    previous = numba.get_num_threads()
    numba.set_num_threads(numba_threads(threads))
    try:
        _read_sum(a[:1024], threads)
        best = np.inf
        for _ in range(repeats):
            t = time.perf_counter()
            _read_sum(a, threads)
            best = min(best, time.perf_counter() - t)
    finally:
        numba.set_num_threads(previous)
    return a.nbytes / best


def bench_machine_info() -> dict[str, Any]:
    """:func:`dotrec.machine.machine_info` plus memory, numba's threading layer and load."""
    return {
        **machine_info(),
        "dotrec": __version__,
        "memory_total_bytes": _meminfo("MemTotal"),
        "numba_threading_layer": _numba_layer(),
        "load_average": _load(),
    }


def _numba_layer() -> str:
    try:
        return str(numba.threading_layer())
    except ValueError:  # no parallel kernel has run yet
        return "not initialised"


def _meminfo(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _rss() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


class ThreadSettings:
    """Set numba, OpenMP (faiss), BLAS and torch to ``n`` threads for a block of code."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> ThreadSettings:
        from threadpoolctl import threadpool_limits

        self._previous = numba.get_num_threads()
        numba.set_num_threads(numba_threads(self.n))
        self._blas = threadpool_limits(self.n)
        try:
            import faiss

            faiss.omp_set_num_threads(self.n)
        except ImportError:
            pass
        try:
            import torch

            torch.set_num_threads(self.n)
        except ImportError:
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        self._blas.restore_original_limits()
        numba.set_num_threads(self._previous)


# ---------------------------------------------------------------------------- timing
def single_query_latency(
    search: Callable[[np.ndarray], object], queries: np.ndarray, budget: float, limit: int
) -> dict[str, float]:
    """Time ``search(q)`` one query at a time: median and p99 in seconds, and the count.

    Runs up to ``limit`` queries or until ``budget`` seconds are spent (at least 20), after
    3 untimed warm-up queries.
    """
    for q in queries[:3]:
        search(q[None, :])
    times: list[float] = []
    spent = 0.0
    for q in queries[:limit]:
        t = time.perf_counter()
        search(q[None, :])
        dt = time.perf_counter() - t
        times.append(dt)
        spent += dt
        if spent > budget and len(times) >= 20:
            break
    arr = np.asarray(times)
    return {
        "median_s": float(np.median(arr)),
        "p99_s": float(np.percentile(arr, 99)),
        "n_queries": len(arr),
    }


def batched_qps(
    search: Callable[[np.ndarray], object], queries: np.ndarray, batch_size: int
) -> float:
    """Queries per second answering ``queries`` in batches of ``batch_size``."""
    search(queries[: min(len(queries), batch_size)])  # warm-up
    t = time.perf_counter()
    for s in range(0, len(queries), batch_size):
        search(queries[s : s + batch_size])
    return len(queries) / (time.perf_counter() - t)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean ``|found ∩ truth| / k`` over rows (``-1`` entries never match)."""
    k = truth.shape[1]
    return float(np.mean([len(np.intersect1d(f[f >= 0], t)) / k for f, t in zip(found, truth)]))


# ---------------------------------------------------------------------------- methods
def _bench_exact(
    vectors: np.ndarray, bias: np.ndarray, queries: np.ndarray, cfg: ServingBenchConfig, bw1: float
) -> tuple[dict[str, Any], np.ndarray]:
    index = ExactIndex(vectors, bias, threads=1)
    with ThreadSettings(1):
        lat = single_query_latency(
            lambda q: index.search(q, cfg.k), queries, cfg.latency_budget, cfg.latency_queries
        )
    scanned = vectors.nbytes + bias.nbytes
    bound = scanned / bw1
    index.threads = cfg.threads
    with ThreadSettings(cfg.threads):
        truth, _ = index.search(queries[: cfg.recall_queries], cfg.k)
        qps = batched_qps(
            lambda q: index.search(q, cfg.k), queries[: cfg.batch_queries], cfg.batch_size
        )
        numpy_qps = batched_qps(
            lambda q: _numpy_topk(q, vectors, bias, cfg.k),
            queries[: cfg.batch_size],
            cfg.batch_size,
        )
    row = {
        "method": "exact",
        "params": {},
        "build_s": 0.0,
        "memory_bytes": index.memory_bytes(),
        "recall": 1.0,
        **lat,
        "batched_qps": qps,
        "numpy_batched_qps": numpy_qps,
        "scanned_bytes": scanned,
        "bandwidth_bound_s": bound,
        "scan_vs_bound": lat["median_s"] / bound,
    }
    return row, truth


def _numpy_topk(q: np.ndarray, vectors: np.ndarray, bias: np.ndarray, k: int) -> np.ndarray:
    """The plain baseline: BLAS matmul + argpartition (unsorted top-k)."""
    scores = q @ vectors.T
    scores += bias
    return np.argpartition(-scores, k, axis=1)[:, :k]


def _bench_ann(
    name: str,
    vectors: np.ndarray,
    bias: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    cfg: ServingBenchConfig,
) -> dict[str, Any]:
    kind, params = METHODS[name]
    cls: Any = index_classes()[kind]  # the ANN classes take seed= and their own knobs
    rss0 = _rss()
    with ThreadSettings(cfg.threads):
        t = time.perf_counter()
        index: ItemIndex = cls(vectors, bias, threads=cfg.threads, seed=cfg.seed, **params)
        build_s = time.perf_counter() - t
    rss_delta = _rss() - rss0
    knob, values = (
        ("ef_search", tuple(EF_SWEEP)) if kind == "hnsw" else ("nprobe", tuple(NPROBE_SWEEP))
    )
    values = tuple(values)
    if kind == "ivf":
        values = tuple(v for v in values if v <= index.nlist)  # type: ignore[attr-defined]
    sweep = []
    for v in values:
        index.set_search_params(**{knob: v})
        index.threads = cfg.threads
        with ThreadSettings(cfg.threads):
            rec = recall(index.search(queries[: cfg.recall_queries], cfg.k)[0], truth)
        index.threads = 1
        with ThreadSettings(1):
            lat = single_query_latency(
                lambda q: index.search(q, cfg.k),
                queries,
                cfg.latency_budget / 4,
                cfg.latency_queries,
            )
        sweep.append({knob: v, "recall": rec, **lat})
        if rec >= max(0.999, cfg.recall_target):
            break  # larger settings only cost more
    ok = [s for s in sweep if s["recall"] >= cfg.recall_target]
    best = min(ok, key=lambda s: s["median_s"]) if ok else max(sweep, key=lambda s: s["recall"])
    index.set_search_params(**{knob: best[knob]})
    index.threads = cfg.threads
    with ThreadSettings(cfg.threads):
        qps = batched_qps(
            lambda q: index.search(q, cfg.k), queries[: cfg.batch_queries], cfg.batch_size
        )
    return {
        "method": name,
        "params": index.params(),
        "build_s": build_s,
        "memory_bytes": index.memory_bytes(),
        "rss_delta_bytes": rss_delta,
        "recall": best["recall"],
        "median_s": best["median_s"],
        "p99_s": best["p99_s"],
        "n_queries": best["n_queries"],
        "batched_qps": qps,
        "meets_recall_target": bool(ok),
        "sweep": sweep,
    }


def neumf_for_catalog(n_items: int, dim: int, seed: int = 0) -> Model:
    """A NeuMF with seeded random weights over ``n_items`` items and embeddings of ``dim``.

    GMF factor ``dim``; MLP embeddings of ``dim`` per side and hidden layers
    ``[dim, dim/2, dim/4]`` (the NCF three-layer halving tower at the dot model's width).
    """
    from dotrec.models.ncf import NeuMF

    model = NeuMF(factor=dim, layers=[dim, max(1, dim // 2), max(1, dim // 4)], seed=seed)
    model.n_users, model.n_items = 1, n_items
    model._restore(model._initial_weights())  # fitted state without a training run
    return model


def _bench_neumf(n: int, cfg: ServingBenchConfig) -> dict[str, Any]:
    rss0 = _rss()
    t = time.perf_counter()
    model = neumf_for_catalog(n, cfg.dim, cfg.seed)
    user = np.zeros(1, np.int64)
    model.score_all(user)  # the first call precomputes the item tables
    build_s = time.perf_counter() - t
    rss_delta = _rss() - rss0
    calls = np.zeros((cfg.latency_queries, 1), np.float32)  # one call per "query": same user
    with ThreadSettings(1):
        lat = single_query_latency(
            lambda _: topk_rows(model.score_all(user), cfg.k),
            calls,
            cfg.latency_budget,
            cfg.latency_queries,
        )
    return {
        "method": "neumf",
        "params": model.config(),
        "build_s": build_s,
        "memory_bytes": rss_delta,
        "recall": 1.0,
        **lat,
        "batched_qps": None,
    }


# ---------------------------------------------------------------------------- driver
def growth_exponent(sizes: Sequence[int], latencies: Sequence[float]) -> float | None:
    """Slope of log(latency) against log(size) by least squares (None with < 2 sizes)."""
    if len(sizes) < 2:
        return None
    slope, _ = np.polyfit(np.log(np.asarray(sizes, float)), np.log(np.asarray(latencies)), 1)
    return float(slope)


@dataclass
class ServingBenchResult:
    """Everything :func:`run_serving_bench` measured (``asdict`` is the JSON file)."""

    config: dict[str, Any]
    machine: dict[str, Any]
    source_model: str
    bandwidth_bytes_per_s: dict[str, float]
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    exponents: dict[str, float | None] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def _bytes_needed(n: int, d: int, methods: Sequence[str], batch: int) -> int:
    per_item = (d + 1) * 4  # the catalog itself
    per_item += sum(
        {
            "hnsw": (d + 3) * 4 + 300,
            "hnsw-ip": (d + 2) * 4 + 300,
            "ivf": (d + 3) * 4 + 8,
            "ivf-ip": (d + 2) * 4 + 8,
            "neumf": 7 * d * 4,
        }.get(m, 0)
        for m in methods
    )
    return n * (per_item + batch * 4 * 2)  # the numpy baseline's score block, twice


def run_serving_bench(
    cfg: ServingBenchConfig,
    model: DotProductModel | None = None,
    source_name: str = "",
    log: Callable[[str], None] = print,
) -> ServingBenchResult:
    """Run the benchmark (see the module doc) and return its measurements."""
    if model is None:
        log(f"training a quick MF (dim {cfg.dim}) on the synthetic data ...")
        model, source_name = quick_model(cfg.dim, cfg.seed)
    if not isinstance(model, DotProductModel):
        raise ConfigError(f"--model must hold a dot-product model, not {model.name!r}")
    if model.item_factors.shape[1] != cfg.dim:
        raise ConfigError(f"the model has dim {model.item_factors.shape[1]}, --dim is {cfg.dim}")
    log("measuring memory bandwidth ...")
    bw = {str(t): memory_bandwidth(t, cfg.bandwidth_bytes) for t in sorted({1, cfg.threads})}
    log(
        "  read bandwidth: "
        + ", ".join(f"{v / 1e9:.1f} GB/s with {t} thread(s)" for t, v in bw.items())
    )
    res = ServingBenchResult(
        config=asdict(cfg),
        machine=bench_machine_info(),
        source_model=source_name,
        bandwidth_bytes_per_s=bw,
    )
    n_q = max(cfg.recall_queries, cfg.latency_queries, cfg.batch_queries)
    for n in sorted(cfg.sizes):
        available = _meminfo("MemAvailable")
        need = _bytes_needed(n, cfg.dim, cfg.methods, cfg.batch_size)
        if available is not None and need > 0.8 * available:
            res.skipped.append(
                {
                    "size": n,
                    "reason": f"needs about {need / 2**30:.1f} GiB, "
                    f"{available / 2**30:.1f} GiB available",
                }
            )
            log(f"skipping {n:,} items: {res.skipped[-1]['reason']}")
            continue
        load0 = _load()
        vectors, bias, queries = sample_catalog(model, n, n_q, cfg.seed)
        log(f"{n:,} items x {cfg.dim}: exact ...")
        row, truth = _bench_exact(vectors, bias, queries, cfg, bw["1"])
        rows = [row]
        for name in cfg.methods:
            if name in ("exact", "neumf"):
                continue
            log(f"{n:,} items: {name} (build + {METHODS[name][0]} parameter sweep) ...")
            rows.append(_bench_ann(name, vectors, bias, queries, truth, cfg))
        if "neumf" in cfg.methods:
            log(f"{n:,} items: neumf whole-catalog scoring ...")
            rows.append(_bench_neumf(n, cfg))
        load1 = _load()
        for r in rows:
            r.update(size=n, load_before=load0, load_after=load1)
            log(
                f"  {r['method']:8s} median {r['median_s'] * 1e3:9.4f} ms  "
                f"p99 {r['p99_s'] * 1e3:9.4f} ms  recall@{cfg.k} {r['recall']:.4f}"
            )
        res.rows.extend(rows)
        del vectors, bias, queries
    _summarise(res, cfg)
    return res


def _summarise(res: ServingBenchResult, cfg: ServingBenchConfig) -> None:
    methods = sorted({r["method"] for r in res.rows}, key=list(METHODS).index)
    for m in methods:
        rows = [r for r in res.rows if r["method"] == m]
        res.exponents[m] = growth_exponent([r["size"] for r in rows], [r["median_s"] for r in rows])
    if not res.rows:
        return
    n = max(r["size"] for r in res.rows)
    at = {r["method"]: r for r in res.rows if r["size"] == n}
    ann = [
        r
        for r in at.values()
        if r["method"] not in ("exact", "neumf") and r["recall"] >= cfg.recall_target
    ]
    s: dict[str, Any] = {"size": n}
    if ann:
        best = min(ann, key=lambda r: r["median_s"])
        s["best_ann"] = {
            "method": best["method"],
            "params": best["params"],
            "recall": best["recall"],
            "median_ms": best["median_s"] * 1e3,
        }
    if "exact" in at:
        e = at["exact"]
        s["exact_scan_ms"] = e["median_s"] * 1e3
        s["bandwidth_bound_ms"] = e["bandwidth_bound_s"] * 1e3
        s["exact_scan_vs_bound"] = e["scan_vs_bound"]
        s["exact_batched_qps"] = e["batched_qps"]
        s["numpy_batched_qps"] = e["numpy_batched_qps"]
    if "neumf" in at:
        s["neumf_ms"] = at["neumf"]["median_s"] * 1e3
        if ann:
            s["neumf_over_ann"] = at["neumf"]["median_s"] / min(r["median_s"] for r in ann)
        if "exact" in at:
            s["neumf_over_exact"] = at["neumf"]["median_s"] / at["exact"]["median_s"]
    res.summary = s


# ---------------------------------------------------------------------------- reports
def table_markdown(res: ServingBenchResult) -> str:
    """One row per (size, method) as a Markdown table."""
    k = res.config["k"]
    lines = [
        f"| items | method | params | build s | memory MiB | recall@{k} | median ms | "
        "p99 ms | batched q/s |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res.rows:
        params = ", ".join(
            f"{a}={b}"
            for a, b in r["params"].items()
            if a
            in (
                "m",
                "ef_construction",
                "ef_search",
                "nlist",
                "nprobe",
                "metric",
                "factor",
                "layers",
            )
        )
        qps = "-" if r.get("batched_qps") is None else f"{r['batched_qps']:,.0f}"
        lines.append(
            f"| {r['size']:,} | {r['method']} | {params} | {r['build_s']:.2f} | "
            f"{r['memory_bytes'] / 2**20:,.1f} | {r['recall']:.4f} | "
            f"{r['median_s'] * 1e3:.4f} | {r['p99_s'] * 1e3:.4f} | {qps} |"
        )
    return "\n".join(lines)


def summary_lines(res: ServingBenchResult) -> list[str]:
    """The headline figures, as printed after the table."""
    s, cfg = res.summary, res.config
    bw = res.bandwidth_bytes_per_s
    out = [
        "read bandwidth: " + ", ".join(f"{v / 1e9:.1f} GB/s ({t} thread(s))" for t, v in bw.items())
    ]
    out.append(
        "growth exponents (median latency ~ size^e): "
        + ", ".join(f"{m} {e:.2f}" for m, e in res.exponents.items() if e is not None)
    )
    if not s:
        return out
    n = s["size"]
    if "best_ann" in s:
        b = s["best_ann"]
        out.append(
            f"at {n:,} items: best ANN at recall@{cfg['k']} >= {cfg['recall_target']}: "
            f"{b['method']} {b['params']} recall {b['recall']:.4f}, median "
            f"{b['median_ms']:.4f} ms on 1 thread"
        )
    else:
        out.append(f"at {n:,} items: no ANN setting reached recall {cfg['recall_target']}")
    if "exact_scan_ms" in s:
        out.append(
            f"exact scan of one query: {s['exact_scan_ms']:.2f} ms; memory-bandwidth "
            f"bound {s['bandwidth_bound_ms']:.2f} ms (ratio {s['exact_scan_vs_bound']:.2f})"
        )
        out.append(
            f"batched exact top-{cfg['k']} with {cfg['threads']} threads: "
            f"{s['exact_batched_qps']:,.0f} queries/s (numpy matmul + argpartition: "
            f"{s['numpy_batched_qps']:,.0f})"
        )
    if "neumf_ms" in s:
        line = f"NeuMF whole-catalog scoring + top-{cfg['k']} for one user: {s['neumf_ms']:.2f} ms"
        if "neumf_over_ann" in s:
            line += f" = {s['neumf_over_ann']:,.0f}x the best ANN"
        if "neumf_over_exact" in s:
            line += f", {s['neumf_over_exact']:.1f}x the exact scan"
        out.append(line)
    return out


def plot(res: ServingBenchResult, path: Path) -> None:
    """Log-log plot of median single-query latency against catalog size (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for m, e in res.exponents.items():
        rows = sorted((r for r in res.rows if r["method"] == m), key=lambda r: r["size"])
        label = m if e is None else f"{m} (slope {e:.2f})"
        ax.plot([r["size"] for r in rows], [r["median_s"] * 1e3 for r in rows], "o-", label=label)
    bound = sorted(
        (r["size"], r["bandwidth_bound_s"] * 1e3) for r in res.rows if r["method"] == "exact"
    )
    if bound:
        ax.plot(*zip(*bound), "k--", lw=1, label="exact: DRAM bandwidth bound")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("catalog size (items)")
    ax.set_ylabel("median latency, one query, 1 thread (ms)")
    ax.set_title(f"top-{res.config['k']} latency, dim {res.config['dim']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_reports(res: ServingBenchResult, out: Path) -> dict[str, Path]:
    """Write ``serving.json``, ``serving.md`` and ``serving.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "serving.json", "table": out / "serving.md", "plot": out / "serving.png"}
    atomic_write_bytes(paths["json"], (json.dumps(asdict(res), indent=2) + "\n").encode())
    text = table_markdown(res) + "\n\n" + "\n".join(f"- {line}" for line in summary_lines(res))
    atomic_write_bytes(paths["table"], (text + "\n").encode())
    plot(res, paths["plot"])
    return paths

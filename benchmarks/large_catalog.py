"""Large catalogs on one machine: an IVF-PQ index over 10^7 or 10^8 items of dim 64.

Usage:
    python benchmarks/large_catalog.py --items 1e7 --work /tmp/catalog --out results/cat-1e7
    python benchmarks/large_catalog.py --items 1e8 --nlist 32768 --work /tmp/catalog \
        --out results/cat-1e8                       # 25.6 GB of vectors on disk, never in RAM

The items are drawn (seeded) from the distribution of a quick MF's bias-folded item vectors
(``dotrec.bench.serving.stream_catalog``) and written chunk by chunk to ``WORK/items-N.npy``,
which the build and the exact re-scoring read as a memory map. Recall@10 is measured against
an exact top-10 computed by streaming the whole file in chunks, on ``--queries`` user vectors
drawn the same way. Reported: build time, the index's own bytes (codes, ids, centroids,
codebooks) and per item, the peak anonymous memory of the build (sampled every 0.2 s; mapped
file pages are page cache, not counted), and for each ``nprobe`` x ``refine``: recall@10 and
single-query latency (1 thread, p50/p99 over the queries, seen-item filter off).
``--rescore sq8`` adds the in-memory 8-bit re-scoring store to the index (timed on its own)
and re-scores from it instead of the vectors file.

With ``--serve-users N`` it then goes the whole way to a served answer: the catalog becomes an
MF model artifact with N users (``dotrec.bench.serving.catalog_model``, 20 seen items each),
the index is saved beside it (``dotrec index build`` would build the same one), and
``dotrec serve --index ivfpq`` is started; reported are the model and index sizes on disk, the
time until the server answers, and the latency of 2,000 sequential recommendation requests
(``benchmarks/openloop.c``, closed loop over one connection; seen items filtered).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before faiss / numba load OpenMP

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from dotrec.bench.loadtest import free_port, start_server, stop_server, wait_ready  # noqa: E402
from dotrec.bench.serving import (  # noqa: E402
    ThreadSettings,
    catalog_model,
    parse_sizes,
    quick_model,
    sample_vectors,
    stream_catalog,
)
from dotrec.machine import machine_line  # noqa: E402
from dotrec.random import rng  # noqa: E402
from dotrec.retrieval import IVFPQIndex, save_index  # noqa: E402
from dotrec.retrieval.topk import topk_dot  # noqa: E402


def rss_anon() -> int:
    """Anonymous resident bytes of this process (heap and numpy arrays, not mapped files)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakAnon:
    """Samples :func:`rss_anon` in a thread while the ``with`` block runs."""

    def __enter__(self) -> PeakAnon:
        self.peak = rss_anon()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_anon())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_anon())


def exact_top10(
    q: np.ndarray, items: np.ndarray, bias: np.ndarray, threads: int, chunk: int = 1 << 22
) -> np.ndarray:
    """Exact top-10 item indices of each query, streaming ``items`` in chunks."""
    best_s = np.full((len(q), 0), -np.inf, np.float32)
    best_i = np.zeros((len(q), 0), np.int64)
    for s in range(0, len(items), chunk):
        idx, sc = topk_dot(q, items[s : s + chunk], bias[s : s + chunk], 10, threads=threads)
        cat_s = np.hstack([best_s, sc])
        cat_i = np.hstack([best_i, idx + s])
        # (score desc, index asc): the order of the exact index
        order = np.lexsort((cat_i, -cat_s), axis=1)[:, :10]
        best_s = np.take_along_axis(cat_s, order, 1)
        best_i = np.take_along_axis(cat_i, order, 1)
    return best_i


def serve_end_to_end(index: IVFPQIndex, items: np.ndarray, bias: np.ndarray, a: Any) -> Any:
    """Model artifact + saved index -> ``dotrec serve`` -> timed recommendation requests."""
    n = len(items)
    folder = a.work / f"model-{n}"
    t = time.perf_counter()
    model, train = catalog_model(n, a.serve_users, a.dim, seed=a.seed, items=(items, bias))
    model.save(folder, dataset=f"synthetic-catalog-{n}", train=train)
    save_index(index, folder)
    write_s = time.perf_counter() - t
    sizes = {f.name: f.stat().st_size for f in folder.rglob("*") if f.is_file()}
    port = free_port()
    t = time.perf_counter()
    proc = start_server(folder, port, index="ivfpq")
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}", timeout=1800)
        ready_s = time.perf_counter() - t
        users = rng(a.seed, "large_catalog_users").integers(0, a.serve_users, 2000)
        paths = a.work / "served-paths.txt"
        paths.write_text("".join(f"/users/{u}/recommendations?k=10\n" for u in users))
        exe = a.work / "openloop"
        subprocess.run(
            ["cc", "-O2", "-o", str(exe), str(Path(__file__).with_name("openloop.c")), "-lm"],
            check=True,
        )
        subprocess.run(
            [str(exe), "-p", str(port), "-r", "0", "-n", "200", "-c", "1", "-f", str(paths)],
            check=True,
            capture_output=True,
        )  # warm-up
        out = subprocess.run(
            [str(exe), "-p", str(port), "-r", "0", "-n", "2000", "-c", "1", "-f", str(paths)],
            check=True,
            capture_output=True,
            text=True,
        )
        lat = json.loads(out.stdout)
        answer = httpx.get(f"http://127.0.0.1:{port}/users/0/recommendations?k=3").json()
    finally:
        stop_server(proc)
    res = {
        "folder": str(folder),
        "users": a.serve_users,
        "write_seconds": write_s,
        "bytes_on_disk": sizes,
        "ready_seconds": ready_s,
        "params": index.params(),
        "requests": lat,
        "example_answer": answer,
    }
    print(
        f"served end to end: model + index written in {write_s:.0f} s "
        f"({sum(sizes.values()) / 2**30:.2f} GiB), server ready in {ready_s:.0f} s, "
        f"2,000 sequential requests: p50 {lat['latency_ms']['p50']:.2f} ms, "
        f"p99 {lat['latency_ms']['p99']:.2f} ms, {lat['errors'] + lat['non2xx']} errors; "
        f"user 0 gets {[x['item_id'] for x in answer['items']]}"
    )
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", default="1e7")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--work", type=Path, required=True, help="folder for the vector file")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--nlist", type=int, default=None)
    p.add_argument("--m", type=int, default=None)
    p.add_argument("--quantizer", default=None, help="auto, flat or hnsw")
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--nprobes", default="8,16,32,64")
    p.add_argument("--refines", default="1,4,10")
    p.add_argument(
        "--rescore",
        choices=("exact", "sq8"),
        default="exact",
        help="re-score candidates from the vectors file, or from 8-bit codes in memory",
    )
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--serve-users", type=int, default=0)
    p.add_argument("--serve-nprobe", type=int, default=None)
    p.add_argument("--serve-refine", type=int, default=None)
    a = p.parse_args()
    (n,) = parse_sizes(a.items)
    a.work.mkdir(parents=True, exist_ok=True)
    a.out.mkdir(parents=True, exist_ok=True)
    print(machine_line())
    model, source = quick_model(a.dim, a.seed)
    path = a.work / f"items-{n}-d{a.dim}-s{a.seed}.npy"
    bias_path = path.with_name(path.stem + "-bias.npy")
    t = time.perf_counter()
    if path.exists() and bias_path.exists():  # written by an earlier run with these settings
        items, bias = np.load(path, mmap_mode="r"), np.load(bias_path)
    else:
        items, bias = stream_catalog(model, n, path, a.seed)
        np.save(bias_path, bias)
    gen_s = time.perf_counter() - t
    print(
        f"catalog: {n:,} items of dim {a.dim} in {path} ({path.stat().st_size / 2**30:.1f} GiB), "
        f"written in {gen_s:.0f} s; vectors from {source}"
    )
    q = sample_vectors(model.user_factors, a.queries, a.seed, "bench_queries")
    t = time.perf_counter()
    truth = exact_top10(q, items, bias, a.threads)
    print(
        f"exact top-10 of {a.queries} queries by a streamed scan: {time.perf_counter() - t:.0f} s"
    )
    given = (
        ("nlist", a.nlist),
        ("m", a.m),
        ("quantizer", a.quantizer),
        ("train_size", a.train_size),
    )
    params = {k: v for k, v in given if v is not None}
    tag = "-".join(str(v) for v in (a.nlist, a.m, a.quantizer, a.train_size))
    cached = a.work / f"ivfpq-{n}-d{a.dim}-s{a.seed}-{tag}.faiss"
    t = time.perf_counter()
    with PeakAnon() as peak:
        if cached.exists():  # built by an earlier run with these settings: its figures stand
            built = json.loads(cached.with_suffix(".json").read_text())
            restored = IVFPQIndex._restore(items, bias, built["params"], cached, a.threads)
            assert isinstance(restored, IVFPQIndex)
            index = restored
        else:
            index = IVFPQIndex(items, bias, threads=a.threads, seed=a.seed, **params)
    build_s = time.perf_counter() - t
    if cached.exists():
        build_s, peak.peak = built["build_seconds"], built["build_peak_anon_bytes"]
        print(f"(index read from {cached}; build figures of the run that built it)")
    else:
        index._faiss.write_index(index._index, str(cached))
        cached.with_suffix(".json").write_text(
            json.dumps(
                {
                    "params": index.params(),
                    "build_seconds": build_s,
                    "build_peak_anon_bytes": peak.peak,
                }
            )
        )
    store_s = store_peak = None
    if a.rescore == "sq8":  # the codes and cells above stay; the store is added to them
        t = time.perf_counter()
        with PeakAnon() as peak_store:
            index.add_sq8_store()
        store_s, store_peak = time.perf_counter() - t, peak_store.peak
        print(
            f"sq8 re-scoring store added in {store_s:.0f} s "
            f"(peak anonymous memory {store_peak / 2**30:.2f} GiB)"
        )
    ib = index.index_bytes()
    print(
        f"built {index!r} in {build_s:.0f} s; index {ib / 2**30:.2f} GiB "
        f"({ib / n:.1f} bytes/item); peak anonymous memory of the build {peak.peak / 2**30:.2f} GiB"
    )
    rows = []
    with ThreadSettings(1):
        index.threads = 1
        for nprobe in (int(x) for x in a.nprobes.split(",")):
            for refine in (int(x) for x in a.refines.split(",")):
                index.set_search_params(nprobe=nprobe, refine=refine)
                lat = np.empty(len(q))
                found = np.empty((len(q), 10), np.int64)
                for i in range(len(q)):
                    t0 = time.perf_counter()
                    found[i] = index.search(q[i : i + 1], 10)[0][0]
                    lat[i] = time.perf_counter() - t0
                rec = float(np.mean([len(np.intersect1d(f, t)) / 10 for f, t in zip(found, truth)]))
                row = {
                    "nprobe": nprobe,
                    "refine": refine,
                    "recall@10": rec,
                    "p50_ms": float(np.percentile(lat, 50) * 1e3),
                    "p99_ms": float(np.percentile(lat, 99) * 1e3),
                    "mean_ms": float(lat.mean() * 1e3),
                }
                rows.append(row)
                print(
                    f"  nprobe {nprobe:4d} refine {refine:3d}: recall@10 {rec:.4f}  "
                    f"p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms"
                )
    served = None
    if a.serve_users:
        index.set_search_params(
            nprobe=a.serve_nprobe or index.nprobe, refine=a.serve_refine or index.refine
        )
        served = serve_end_to_end(index, items, bias, a)
    result = {
        "served": served,
        "machine": machine_line(),
        "items": n,
        "dim": a.dim,
        "queries": a.queries,
        "vectors": source,
        "catalog_seconds": gen_s,
        "build_seconds": build_s,
        "index": {"kind": index.kind, **index.params()},
        "index_bytes": ib,
        "bytes_per_item": ib / n,
        "build_peak_anon_bytes": peak.peak,
        "store_seconds": store_s,
        "store_peak_anon_bytes": store_peak,
        "searches": rows,
    }
    (a.out / "large_catalog.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {a.out / 'large_catalog.json'}")


if __name__ == "__main__":
    main()

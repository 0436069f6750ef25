"""Memory of `dotrec serve --workers N` with and without `--mmap`, on a synthetic catalog.

Each worker process of a server loads the model. Read into memory, every worker holds its own
copy of the item and user matrices; memory-mapped (``--mmap``), the matrices are pages of the
model file that every worker maps, held once in the page cache. Similar-item queries keep only
the items' norms (a float per item), never a normalized copy of the catalog. This script
measures it on 127.0.0.1:

1. a synthetic MF over ``--items`` items of dim 64 and ``--users`` users
   (``dotrec.bench.serving.catalog_model``), saved once in ``--work``;
2. for each mode (read, mmap): ``dotrec serve DIR --workers N [--mmap]`` with exact search,
   ``--requests`` recommendation requests for random users (each exact search reads every item
   vector, so every page of the item matrix is touched in each worker) and ``--similar``
   similar-item requests for random items, then the resident (RSS) and proportional (PSS:
   shared pages divided among the processes that map them) memory of the server's processes
   from ``/proc/PID/smaps_rollup``, and the p50 of each kind of answer.

Prints the figures and the machine. Usage::

    python benchmarks/serve_memory.py --work /tmp/serve-mem [--items 1e6] [--workers 2]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before faiss / numba load OpenMP

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from dotrec.bench.serving import catalog_model  # noqa: E402
from dotrec.machine import machine_line  # noqa: E402


def make_model(work: Path, n_items: int, n_users: int) -> Path:
    """The synthetic model (reused when already in ``work``)."""
    folder = work / f"mf-{n_items}-{n_users}"
    if not (folder / "model.json").exists():
        model, train = catalog_model(n_items, n_users, seed=0)
        model.save(folder, dataset=f"synthetic-catalog-{n_items}", train=train)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the uvicorn supervisor and its workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").iterdir():
            children = (task / "children").read_text().split()
            todo.extend(int(c) for c in children)
    return out


def _memory(pid: int) -> dict[str, int]:
    """RSS and PSS (bytes) of one process."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) * 1024
    return {"rss": fields["Rss"], "pss": fields["Pss"]}


def _p50_ms(client: httpx.Client, urls: list[str]) -> float:
    """Request each URL in turn; the median latency in milliseconds."""
    latencies = []
    for url in urls:
        t = time.perf_counter()
        r = client.get(url, timeout=60)
        latencies.append(time.perf_counter() - t)
        r.raise_for_status()
    return float(np.median(latencies) * 1e3)


def measure(
    model_dir: Path, workers: int, mmap: bool, requests: int, n_users: int, similar: int
) -> Any:
    """Serve ``model_dir``, touch it with ``requests`` recommendation and ``similar``
    similar-item requests, read the processes' memory."""
    port = _free_port()
    cmd = [sys.executable, "-c", "from dotrec.cli import main; main()", "serve", str(model_dir)]
    cmd += ["--port", str(port), "--workers", str(workers)] + (["--mmap"] if mmap else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 600
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as c:
            while len(pids) < workers:  # every worker up (new connections spread over them)
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read() if proc.stderr is not None else b""
                    raise RuntimeError(f"server did not start: {err!r}")
                try:
                    pids.add(int(c.get(base + "/healthz", timeout=5).json()["pid"]))
                except httpx.TransportError:
                    time.sleep(0.3)
            r = np.random.default_rng(0)
            users = r.integers(0, n_users, requests)
            p50 = _p50_ms(c, [f"{base}/users/{u}/recommendations?k=10" for u in users])
            n_items = int(c.get(f"{base}/healthz", timeout=5).json()["n_items"])
            items = r.integers(0, n_items, similar)
            p50_similar = _p50_ms(c, [f"{base}/items/{i}/similar?k=10" for i in items])
        per = {p: _memory(p) for p in _tree(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return {
        "mode": "mmap" if mmap else "read",
        "workers": workers,
        "processes": len(per),
        "rss_total": sum(m["rss"] for m in per.values()),
        "pss_total": sum(m["pss"] for m in per.values()),
        "rss_max": max(m["rss"] for m in per.values()),
        "per_process_mib": [
            {"rss": m["rss"] / 2**20, "pss": m["pss"] / 2**20} for m in per.values()
        ],
        "p50_ms": p50,
        "p50_similar_ms": p50_similar,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--items", type=float, default=1e6)
    ap.add_argument("--users", type=float, default=1e5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--similar", type=int, default=100, help="Similar-item requests.")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    n_items, n_users = int(a.items), int(a.users)
    print(machine_line(), flush=True)
    model_dir = make_model(a.work, n_items, n_users)
    size = (model_dir / "arrays.npz").stat().st_size
    print(f"model: {n_items:,} items x 64, {n_users:,} users; arrays.npz {size / 2**20:.0f} MiB")
    results = []
    for mmap in (False, True):
        r = measure(model_dir, a.workers, mmap, a.requests, n_users, a.similar)
        results.append(r)
        print(
            f"{r['mode']:>4}: {r['workers']} workers ({r['processes']} processes): "
            f"PSS {r['pss_total'] / 2**20:,.0f} MiB in all, RSS {r['rss_total'] / 2**20:,.0f} "
            f"MiB in all (largest process {r['rss_max'] / 2**20:,.0f} MiB); "
            f"p50 {r['p50_ms']:.1f} ms per recommendation, {r['p50_similar_ms']:.1f} ms per "
            "similar-items answer",
            flush=True,
        )
        each = ", ".join(f"{m['rss']:,.0f}/{m['pss']:,.0f}" for m in r["per_process_mib"])
        print(f"      RSS/PSS MiB per process (supervisor first): {each}", flush=True)
    if a.out:
        a.out.write_text(json.dumps({"arrays_bytes": size, "results": results}, indent=1))


if __name__ == "__main__":
    main()

"""Load test: start ``dotrec serve`` on 127.0.0.1, send concurrent requests, report, stop it.

Usage:
    python benchmarks/loadtest.py                                  # 20,000 requests, 32 conns
    python benchmarks/loadtest.py --model MODEL_DIR --index hnsw --workers 2
    python benchmarks/loadtest.py --requests 500 --connections 8   # a short form for CI

Without ``--model`` a quick MF is trained on the built-in synthetic data into a temporary
directory first. Requests are ``GET /users/{id}/recommendations?k=K`` for user ids drawn
(seeded) from the model's users, plus a fraction of unknown ids (``--unknown``, expected 404)
to exercise the error path. The server runs as a subprocess on a free port and is stopped at
the end, also on errors and Ctrl-C. Reported: throughput, latency percentiles (client side,
including the HTTP round trip), status counts and transport errors. The client shares the
machine with the server, so on few cores it competes with it for CPU.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from dotrec.machine import machine_line  # noqa: E402
from dotrec.models import load_seen  # noqa: E402
from dotrec.random import rng  # noqa: E402


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def train_quick_model(folder: Path) -> Path:
    """``dotrec train mf`` on the synthetic data into ``folder/mf``."""
    out = folder / "mf"
    r = subprocess.run([sys.executable, "-c", "from dotrec.cli import main; main()", "train",
                        "mf", "--embedding-dim", "32", "--epochs", "10", "--learning-rate", "0.02",
                        "--protocol", "none", "--out", str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"training the quick model failed:\n{r.stderr}")
    return out


def start_server(model: Path, index: str | None, port: int, workers: int,
                 threads: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", "from dotrec.cli import main; main()", "serve", str(model),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
           "--threads", str(threads)]
    if index:
        cmd += ["--index", index]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(proc: subprocess.Popen[bytes], base: str, timeout: float) -> None:
    """Poll ``/healthz`` until it answers; fail with the server's stderr if it exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"server exited with code {proc.returncode}:\n{err}")
        if time.monotonic() > deadline:
            raise SystemExit(f"server not ready after {timeout:.0f} s")
        time.sleep(0.2)


async def run_load(base: str, paths: list[str], connections: int
                   ) -> tuple[np.ndarray, Counter[int], int, float]:
    """Send every path once over ``connections`` concurrent connections."""
    latencies = np.zeros(len(paths))
    statuses: Counter[int] = Counter()
    errors = 0
    next_i = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_i, errors
        while next_i < len(paths):
            i = next_i
            next_i += 1
            t = time.perf_counter()
            try:
                r = await client.get(paths[i])
                statuses[r.status_code] += 1
            except httpx.HTTPError:
                errors += 1
            latencies[i] = time.perf_counter() - t

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(connections)))
        wall = time.perf_counter() - start
    return latencies, statuses, errors, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=None, help="model directory (default: train)")
    p.add_argument("--index", default=None, help="saved index kind: exact, hnsw, ivf")
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--workers", type=int, default=1, help="server worker processes")
    p.add_argument("--threads", type=int, default=1, help="search threads per request")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--unknown", type=float, default=0.01, help="fraction of unknown user ids")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--startup-timeout", type=float, default=120.0)
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    a = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = a.model or train_quick_model(Path(tmp))
        seen = load_seen(model)
        if seen is None:
            raise SystemExit(f"{model} has no seen.npz; train it with `dotrec train ... --out`")
        r = rng(a.seed, "loadtest")
        users = seen.users.ids[r.integers(0, len(seen.users), a.requests)].tolist()
        unknown = r.random(a.requests) < a.unknown
        paths = [f"/users/{'no-such-user' if x else u}/recommendations?k={a.k}"
                 for u, x in zip(users, unknown)]

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(model, a.index, port, a.workers, a.threads)
        try:
            wait_ready(proc, base, a.startup_timeout)
            asyncio.run(run_load(base, paths[:min(200, len(paths))], a.connections))  # warm-up
            latencies, statuses, errors, wall = asyncio.run(
                run_load(base, paths, a.connections))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    expected_404 = int(unknown.sum())
    bad = {s: n for s, n in statuses.items() if s not in (200, 404)}
    report = {
        "requests": a.requests, "connections": a.connections, "workers": a.workers,
        "threads": a.threads, "index": a.index or "exact", "k": a.k, "wall_s": wall,
        "throughput_rps": a.requests / wall,
        "latency_ms": {f"p{q}": float(np.percentile(latencies, q) * 1e3) for q in (50, 90, 99)},
        "statuses": dict(sorted(statuses.items())), "expected_404": expected_404,
        "transport_errors": errors, "unexpected_statuses": bad,
        "load_average": os.getloadavg(),
    }
    print(machine_line())
    print(f"{a.requests:,} requests over {a.connections} connections, {a.workers} worker(s), "
          f"index {report['index']}, k={a.k}: {report['throughput_rps']:,.0f} requests/s")
    lat = report["latency_ms"]
    print(f"latency p50 {lat['p50']:.2f} ms  p90 {lat['p90']:.2f} ms  p99 {lat['p99']:.2f} ms")
    print(f"statuses {report['statuses']} (expected 404s: {expected_404}); transport errors "
          f"{errors}")
    if a.json:
        a.json.write_text(json.dumps(report, indent=2) + "\n")
    if errors or bad or statuses.get(404, 0) != expected_404:
        raise SystemExit("load test saw errors")


if __name__ == "__main__":
    main()

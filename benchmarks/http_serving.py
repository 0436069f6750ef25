"""HTTP serving at production speed: a 10^6-item model served by `dotrec serve`, measured by
compiled load generators on loopback.

Setup (once): ``apt-get install wrk`` (Debian's package) and a C compiler; the open-loop
generator ``benchmarks/openloop.c`` is compiled into ``--work`` by this script.

Usage:
    python benchmarks/http_serving.py --work /tmp/http-bench --out results/http
    python benchmarks/http_serving.py --items 1e5 --users 1e4 --seconds 5 ...   # a quick look

What it does, on 127.0.0.1 only and bounded in requests and time:

1. a synthetic MF over ``--items`` items of dim 64 (``dotrec.bench.serving.catalog_model``:
   item and user vectors drawn from a trained MF's, 20 seen items per user), saved with an IVF
   index whose ``nprobe`` is the smallest reaching ``--recall`` recall@10 against exact search
   on 1,000 users;
2. for each ``--workers`` N: ``dotrec serve --index ivf --workers N``, then
   - closed loop: ``wrk`` (1 thread, 32 connections, ``--seconds``) over random users;
   - open loop: ``openloop`` at ``--rate`` requests/s for ``--open-requests`` requests, latency
     counted from each request's scheduled send time (no coordinated omission);
   - batch: ``POST /users/recommendations`` with ``--batch`` users per request, closed loop over
     8 connections, users/s against the single requests' users/s;
3. reloads (1 worker): ``POST /admin/reload`` ``--reloads`` times, each followed by 200
   sequential requests; the slowest of them against the median of a quiet sequential run.

Prints the figures and writes them to ``--out``/``http_serving.json``. The load
generators share the 2 cores with the server; all figures are of one run, one job at a time.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before faiss / numba load OpenMP

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from dotrec.bench.loadtest import free_port, start_server, stop_server, wait_ready  # noqa: E402
from dotrec.bench.serving import catalog_model, parse_sizes  # noqa: E402
from dotrec.machine import machine_line  # noqa: E402
from dotrec.models import DotProductModel, load_model  # noqa: E402
from dotrec.random import rng  # noqa: E402
from dotrec.retrieval import build_index, load_index, recall_at_k, save_index  # noqa: E402

HERE = Path(__file__).resolve().parent
WRK_LUA = """
local paths = {}
for line in io.lines(os.getenv("PATHS_FILE")) do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
"""


def build_tools(work: Path) -> tuple[str, Path]:
    """``wrk`` on PATH and ``openloop`` compiled from benchmarks/openloop.c."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    src = HERE / "openloop.c"
    exe = work / "openloop"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            raise SystemExit("no C compiler (cc) to build benchmarks/openloop.c")
        subprocess.run([cc, "-O2", "-o", str(exe), str(src), "-lm"], check=True)
    return wrk, exe


def make_model(work: Path, n_items: int, n_users: int, target: float, seed: int) -> Path:
    """The synthetic model with its IVF index (reused when already in ``work``)."""
    folder = work / f"mf-{n_items}-{n_users}-s{seed}"
    if (folder / "index-ivf" / "index.json").exists():
        return folder
    t = time.perf_counter()
    model, train = catalog_model(n_items, n_users, seed=seed)
    model.save(folder, dataset=f"synthetic-catalog-{n_items}", train=train)
    loaded = load_model(folder)
    assert isinstance(loaded, DotProductModel)
    model = loaded
    index = build_index(model, "ivf", threads=2, seed=seed, recall_queries=1000)
    users = np.sort(rng(seed, "index_recall").choice(model.n_users, 1000, replace=False))
    for nprobe in (2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128):
        index.set_search_params(nprobe=nprobe)
        recall = recall_at_k(index, model.user_factors[users])
        if recall >= target:
            break
    index.build_info["recall@10"] = recall
    save_index(index, folder)
    print(f"model and IVF index built in {time.perf_counter() - t:.0f} s: {index!r}")
    return folder


def write_requests(work: Path, n_users: int, batch: int, seed: int) -> tuple[Path, Path]:
    """Single-user GET paths and batch POST lines (users drawn with ``seed``)."""
    users = rng(seed, "http_bench_users").integers(0, n_users, 200_000)
    single = work / "single.txt"
    single.write_text("".join(f"/users/{u}/recommendations?k=10\n" for u in users))
    lines = []
    for s in range(0, len(users) - batch, batch):
        body = json.dumps({"users": [str(u) for u in users[s : s + batch]], "k": 10})
        lines.append(f"POST\t/users/recommendations\t{body}\n")
    batches = work / "batch.txt"
    batches.write_text("".join(lines))
    return single, batches


def run_openloop(exe: Path, port: int, path: Path, rate: float, n: int, conns: int) -> Any:
    out = subprocess.run(
        [
            str(exe),
            "-p",
            str(port),
            "-r",
            str(rate),
            "-n",
            str(n),
            "-c",
            str(conns),
            "-f",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if not out.stdout.strip():
        raise RuntimeError(f"openloop failed: {out.stderr}")
    return json.loads(out.stdout)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def run_wrk(wrk: str, port: int, path: Path, work: Path, seconds: int) -> dict[str, Any]:
    """Closed loop: 1 thread, 32 connections; wrk's own counts and latency percentiles."""
    script = work / "paths.lua"
    script.write_text(WRK_LUA)
    env = {**os.environ, "PATHS_FILE": str(path)}
    cmd = [wrk, "-t1", "-c32", f"-d{seconds}s", "--latency", "-s", str(script)]
    out = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}"], capture_output=True, text=True, env=env, check=True
    ).stdout
    res: dict[str, Any] = {"raw": out}
    res["requests"] = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    res["rate"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    for p in ("50", "90", "99"):
        m = re.search(rf"^\s+{p}%\s+(\S+)", out, re.M)
        res[f"p{p}_ms"] = _ms(m.group(1)) if m else None
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["errors"] = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(x) for x in sock.groups()) if sock else 0
    )
    return res


def wait_workers(base: str, workers: int, timeout: float = 300.0) -> None:
    """Until ``workers`` distinct worker processes have answered /healthz."""
    pids: set[int] = set()
    deadline = time.monotonic() + timeout
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as c:
        while len(pids) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(pids)} of {workers} workers answered")
            try:
                pids.add(int(c.get(base + "/healthz", timeout=5).json()["pid"]))
            except httpx.TransportError:
                time.sleep(0.2)


def reload_spikes(exe: Path, port: int, single: Path, work: Path, reloads: int) -> dict[str, Any]:
    """Slowest request right after each reload, against the median of a quiet sequential run."""
    quiet = run_openloop(exe, port, single, 0, 2000, 1)
    median = quiet["service_ms"]["p50"]
    worst = []
    lines = single.read_text().splitlines()
    for r in range(reloads):
        status = httpx.post(f"http://127.0.0.1:{port}/admin/reload", timeout=600).status_code
        if status != 200:
            raise RuntimeError(f"reload answered {status}")
        part = work / f"after-reload-{r}.txt"
        part.write_text("\n".join(lines[r * 200 : (r + 1) * 200]) + "\n")
        res = run_openloop(exe, port, part, 0, 200, 1)
        worst.append(res["service_ms"]["max"])
    return {
        "reloads": reloads,
        "quiet_median_ms": median,
        "worst_after_reload_ms": worst,
        "worst_ratio": max(worst) / median,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--items", default="1e6")
    p.add_argument("--users", default="1e5")
    p.add_argument("--recall", type=float, default=0.95)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--open-requests", type=int, default=30_000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--batch-requests", type=int, default=400)
    p.add_argument("--reloads", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    (n_items,), (n_users,) = parse_sizes(a.items), parse_sizes(a.users)
    a.work.mkdir(parents=True, exist_ok=True)
    a.out.mkdir(parents=True, exist_ok=True)
    print(machine_line())
    wrk, exe = build_tools(a.work)
    folder = make_model(a.work, n_items, n_users, a.recall, a.seed)
    index = load_index(folder, "ivf", load_model(folder))
    print(f"serving {folder}: {index!r}, recall@10 {index.build_info['recall@10']:.4f}")
    single, batches = write_requests(a.work, n_users, a.batch, a.seed)
    runs = []
    reload = None
    for workers in (int(w) for w in a.workers.split(",")):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(folder, port, index="ivf", workers=workers)
        try:
            wait_ready(proc, base, timeout=300)
            wait_workers(base, workers)
            run_openloop(exe, port, single, 0, 4000, 32)  # warm-up
            closed = run_wrk(wrk, port, single, a.work, a.seconds)
            opened = run_openloop(exe, port, single, a.rate, a.open_requests, 32)
            batch = run_openloop(exe, port, batches, 0, a.batch_requests, 8)
            if workers == 1 and a.reloads:
                reload = reload_spikes(exe, port, single, a.work, a.reloads)
        finally:
            stop_server(proc)
        row = {
            "workers": workers,
            "closed": {k: v for k, v in closed.items() if k != "raw"},
            "open": opened,
            "batch": {**batch, "users_per_request": a.batch},
            "batch_users_per_s": batch["achieved_rate"] * a.batch,
            "batch_speedup": batch["achieved_rate"] * a.batch / closed["rate"],
        }
        runs.append(row)
        c, o = row["closed"], opened
        print(
            f"workers {workers}: closed loop (wrk, 32 conns) {c['rate']:.0f} req/s over "
            f"{c['requests']} requests, p50 {c['p50_ms']:.2f} ms p99 {c['p99_ms']:.2f} ms, "
            f"{c['errors']} errors"
        )
        print(
            f"  open loop at {a.rate:.0f}/s: {o['requests']} requests, p50 "
            f"{o['latency_ms']['p50']:.2f} ms p99 {o['latency_ms']['p99']:.2f} ms max "
            f"{o['latency_ms']['max']:.2f} ms, {o['errors'] + o['non2xx']} errors"
        )
        print(
            f"  batch of {a.batch}: {row['batch_users_per_s']:.0f} users/s "
            f"({row['batch_speedup']:.1f}x the single requests), {batch['errors']} errors"
        )
    if reload:
        print(
            f"reloads: slowest request after each of {reload['reloads']} reloads "
            f"{max(reload['worst_after_reload_ms']):.2f} ms = {reload['worst_ratio']:.1f}x the "
            f"quiet median {reload['quiet_median_ms']:.2f} ms"
        )
    result = {
        "machine": machine_line(),
        "items": n_items,
        "users": n_users,
        "index": {**index.params(), "recall@10": index.build_info["recall@10"]},
        "runs": runs,
        "reload": reload,
        "command": "python benchmarks/http_serving.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items()),
    }
    (a.out / "http_serving.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {a.out / 'http_serving.json'}")


if __name__ == "__main__":
    main()

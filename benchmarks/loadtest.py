"""Load test: start ``dotrec serve`` on 127.0.0.1, send concurrent requests, report, stop it.

Usage:
    python benchmarks/loadtest.py                                  # 20,000 requests, 32 conns
    python benchmarks/loadtest.py --model MODEL_DIR --index hnsw --workers 2
    python benchmarks/loadtest.py --hostile 0.05 --reloads 5       # faults mixed in

Without ``--model`` a quick MF is trained on the built-in synthetic data into a temporary
directory first. Requests are ``GET /users/{id}/recommendations?k=K`` for user ids drawn
(seeded) from the model's users, plus a fraction of unknown ids (``--unknown``, expected 404)
and of hostile requests (``--hostile``, expected 4xx; see ``dotrec.bench.loadtest``).
``--reloads N`` asks the server to reload its model N times during the run
(``POST /admin/reload``). Reported: throughput, latency percentiles (client side, including
the HTTP round trip), status counts, requests that got an unexpected status, transport
errors. The client shares the machine with the server, so on few cores it competes with it
for CPU. Exits non-zero if any request failed.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402

from dotrec.bench import loadtest as lt  # noqa: E402
from dotrec.machine import machine_line  # noqa: E402
from dotrec.models import load_seen  # noqa: E402


def train_quick_model(folder: Path) -> Path:
    """``dotrec train mf`` on the synthetic data into ``folder/mf``."""
    out = folder / "mf"
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "from dotrec.cli import main; main()",
            "train",
            "mf",
            "--embedding-dim",
            "32",
            "--epochs",
            "10",
            "--learning-rate",
            "0.02",
            "--protocol",
            "none",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise SystemExit(f"training the quick model failed:\n{r.stderr}")
    return out


def load_test(
    model: Path | None = None,
    *,
    index: str | None = None,
    requests: int = 20_000,
    connections: int = 32,
    workers: int = 1,
    threads: int = 1,
    k: int = 10,
    unknown: float = 0.01,
    hostile: float = 0.0,
    reloads: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Run one load test against a fresh server and return its summary."""
    with tempfile.TemporaryDirectory() as tmp:
        model = model or train_quick_model(Path(tmp))
        seen = load_seen(model)
        if seen is None:
            raise SystemExit(f"{model} has no seen.npz; train it with `dotrec train ... --out`")
        probes = lt.request_mix(
            seen.users.ids.tolist(),
            seen.items.ids[0],
            requests,
            k=k,
            unknown=unknown,
            hostile=hostile,
            seed=seed,
        )
        port = lt.free_port()
        base = f"http://127.0.0.1:{port}"
        proc = lt.start_server(model, port, index=index, workers=workers, threads=threads)
        reload_status: list[int] = []

        def reload_during_run() -> None:
            for _ in range(reloads):
                time.sleep(0.5)
                reload_status.append(httpx.post(base + "/admin/reload", timeout=120).status_code)

        try:
            lt.wait_ready(proc, base)
            lt.run_load(base, probes[:200], connections)  # warm-up
            result = lt.with_background(
                reload_during_run, lambda: lt.run_load(base, probes, connections)
            )
        finally:
            lt.stop_server(proc)
    return {
        **result.summary(),
        "workers": workers,
        "threads": threads,
        "index": index or "exact",
        "k": k,
        "hostile_fraction": hostile,
        "reloads": reload_status,
        "load_average": os.getloadavg(),
    }


def print_report(report: dict[str, Any]) -> None:
    print(
        f"{report['requests']:,} requests over {report['connections']} connections, "
        f"{report['workers']} worker(s), index {report['index']}, k={report['k']}: "
        f"{report['throughput_rps']:,.0f} requests/s"
    )
    lat = report["latency_ms"]
    print(f"latency p50 {lat['p50']:.2f} ms  p90 {lat['p90']:.2f} ms  p99 {lat['p99']:.2f} ms")
    print(
        f"statuses {report['statuses']}; 5xx {report['server_errors']}; transport errors "
        f"{report['transport_errors']}; unexpected statuses {sum(report['unexpected'].values())}"
        + (f"; reloads {report['reloads']}" if report["reloads"] else "")
    )
    for what, n in report["unexpected"].items():
        print(f"  unexpected: {what} x{n}")


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
    p.add_argument("--hostile", type=float, default=0.0, help="fraction of hostile requests")
    p.add_argument("--reloads", type=int, default=0, help="model reloads during the run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    a = p.parse_args()
    report = load_test(
        a.model,
        index=a.index,
        requests=a.requests,
        connections=a.connections,
        workers=a.workers,
        threads=a.threads,
        k=a.k,
        unknown=a.unknown,
        hostile=a.hostile,
        reloads=a.reloads,
        seed=a.seed,
    )
    print(machine_line())
    print_report(report)
    if a.json:
        a.json.write_text(json.dumps(report, indent=2) + "\n")
    if report["failures"] or any(s != 200 for s in report["reloads"]):
        raise SystemExit("load test saw errors")


if __name__ == "__main__":
    main()

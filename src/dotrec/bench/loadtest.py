"""Load test of the HTTP service: a running ``dotrec serve``, many concurrent requests.

Used by ``benchmarks/loadtest.py`` (20,000 requests over 32 connections), by
``benchmarks/reliability.py`` and, in a short form, by the test suite. Each request carries
the set of statuses it may get: a known user 200, an unknown user 404, a hostile request
(:func:`hostile_paths`: huge or negative ``k``, over-long ids, unicode, path tricks, bad
booleans) a 4xx. Anything else, and any transport error, is counted as a failure.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np

from dotrec.random import rng
from dotrec.serve.app import MAX_ID_LENGTH, MAX_K

#: Expected statuses of one request kind.
OK = frozenset({200})
NOT_FOUND = frozenset({404})
CLIENT_ERROR = frozenset(range(400, 500))


@dataclass(frozen=True)
class Probe:
    """One request and the statuses that would be correct for it."""

    path: str
    expected: frozenset[int]
    kind: str


def hostile_paths(user_id: str, item_id: str) -> list[Probe]:
    """Requests a hostile or careless client may send; each must end in a 4xx, never a 5xx.

    ``user_id`` and ``item_id`` are known ids, so only the hostile part can be to blame.
    """
    u, i = quote(user_id, safe=""), quote(item_id, safe="")
    rec = f"/users/{u}/recommendations"
    long_id = "x" * (MAX_ID_LENGTH + 1)
    cases = [
        (f"{rec}?k={MAX_K + 1}", CLIENT_ERROR),
        (f"{rec}?k=1000000000", CLIENT_ERROR),
        (f"{rec}?k={'9' * 400}", CLIENT_ERROR),
        (f"{rec}?k=-1", CLIENT_ERROR),
        (f"{rec}?k=0", CLIENT_ERROR),
        (f"{rec}?k=1e309", CLIENT_ERROR),
        (f"{rec}?k=NaN", CLIENT_ERROR),
        (f"{rec}?k=%00", CLIENT_ERROR),
        (f"{rec}?exclude_seen=maybe", CLIENT_ERROR),
        (f"/items/{i}/similar?k=-7", CLIENT_ERROR),
        (f"/users/{long_id}/recommendations", CLIENT_ERROR),
        (f"/items/{long_id}/similar", CLIENT_ERROR),
        (f"/users/{'7' * MAX_ID_LENGTH}/recommendations", NOT_FOUND),
        (f"/users/{quote('用户😀', safe='')}/recommendations", NOT_FOUND),
        (f"/users/{quote('ü' * 200, safe='')}/recommendations", NOT_FOUND),
        ("/users/%2e%2e%2f%2e%2e%2fetc%2fpasswd/recommendations", NOT_FOUND),
        ("/users/..%5c..%5cwindows/recommendations", NOT_FOUND),
        ("/users/%00/recommendations", NOT_FOUND),
        ("/users/%20/recommendations", NOT_FOUND),
        ("/users/%ff%fe/recommendations", NOT_FOUND),
        ("/users/--5/recommendations", NOT_FOUND),
        ("/users/-1/recommendations", NOT_FOUND),
        ("/items/%2e%2e/similar", NOT_FOUND),
        ("/../../etc/passwd", NOT_FOUND),
        ("/users//recommendations", NOT_FOUND),
        ("/admin/reload", CLIENT_ERROR),
    ]
    return [Probe(path, expected, "hostile") for path, expected in cases]


def request_mix(
    user_ids: Sequence[Any],
    item_id: Any,
    n: int,
    *,
    k: int = 10,
    unknown: float = 0.01,
    hostile: float = 0.0,
    seed: int = 0,
) -> list[Probe]:
    """``n`` seeded requests: known users' top-``k``, plus unknown ids and hostile requests."""
    r = rng(seed, "loadtest")
    picks = r.integers(0, len(user_ids), n)
    kinds = r.random(n)
    bad = hostile_paths(str(user_ids[0]), str(item_id))
    bad_picks = r.integers(0, len(bad), n)
    out = []
    for j in range(n):
        if kinds[j] < hostile:
            out.append(bad[bad_picks[j]])
        elif kinds[j] < hostile + unknown:
            out.append(
                Probe(f"/users/no-such-user-{j}/recommendations?k={k}", NOT_FOUND, "unknown")
            )
        else:
            uid = quote(str(user_ids[picks[j]]), safe="")
            out.append(Probe(f"/users/{uid}/recommendations?k={k}", OK, "known"))
    return out


@dataclass
class LoadResult:
    """What a load run saw: per-request latency, statuses, failures."""

    requests: int
    connections: int
    wall_s: float
    latencies_s: np.ndarray
    statuses: Counter[int]
    transport_errors: int
    unexpected: Counter[str] = field(default_factory=Counter)

    @property
    def failures(self) -> int:
        """Requests with a transport error or a status outside their expected set."""
        return self.transport_errors + sum(self.unexpected.values())

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_s * 1e3
        return {
            "requests": self.requests,
            "connections": self.connections,
            "wall_s": self.wall_s,
            "throughput_rps": self.requests / self.wall_s,
            "latency_ms": {f"p{q}": float(np.percentile(lat, q)) for q in (50, 90, 99)},
            "statuses": {str(s): n for s, n in sorted(self.statuses.items())},
            "server_errors": self.server_errors,
            "transport_errors": self.transport_errors,
            "unexpected": dict(self.unexpected),
            "failures": self.failures,
        }


async def _run(base: str, probes: Sequence[Probe], connections: int, timeout: float) -> LoadResult:
    latencies = np.zeros(len(probes))
    statuses: Counter[int] = Counter()
    unexpected: Counter[str] = Counter()
    errors = 0
    next_i = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_i, errors
        while next_i < len(probes):
            i = next_i
            next_i += 1
            p = probes[i]
            t = time.perf_counter()
            try:
                r = await client.get(p.path)
                statuses[r.status_code] += 1
                if r.status_code not in p.expected:
                    unexpected[f"{p.kind} {r.status_code} {p.path[:80]}"] += 1
            except httpx.HTTPError:
                errors += 1
            latencies[i] = time.perf_counter() - t

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(connections)))
        wall = time.perf_counter() - start
    return LoadResult(len(probes), connections, wall, latencies, statuses, errors, unexpected)


def run_load(
    base: str, probes: Sequence[Probe], connections: int = 32, *, timeout: float = 60.0
) -> LoadResult:
    """Send every probe once over ``connections`` concurrent keep-alive connections."""
    return asyncio.run(_run(base, probes, connections, timeout))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    model_dir: Path,
    port: int,
    *,
    index: str | None = None,
    workers: int = 1,
    threads: int = 1,
    extra: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """``dotrec serve`` as a subprocess on 127.0.0.1 (stderr piped for error reports)."""
    cmd = [
        sys.executable,
        "-c",
        "from dotrec.cli import main; main()",
        "serve",
        str(model_dir),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        *extra,
    ]
    if index:
        cmd += ["--index", index]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(proc: subprocess.Popen[bytes], base: str, timeout: float = 120.0) -> None:
    """Poll ``/healthz`` until it answers; raise with the server's stderr if it exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"server exited with code {proc.returncode}:\n{err}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"server not ready after {timeout:.0f} s")
        time.sleep(0.2)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server (SIGTERM, then SIGKILL after 30 s)."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def with_background(task: Callable[[], None], work: Callable[[], LoadResult]) -> LoadResult:
    """Run ``work`` while ``task`` runs in a thread (e.g. model reloads during a load run)."""
    failure: list[BaseException] = []

    def wrapped() -> None:
        try:
            task()
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)

    t = threading.Thread(target=wrapped, daemon=True)
    t.start()
    try:
        return work()
    finally:
        t.join()
        if failure:
            raise failure[0]

"""A short load test against a real `dotrec serve` process (loopback only), with faults mixed in.

The benchmark form (``benchmarks/loadtest.py``: 20,000 requests over 32 connections) reports
throughput; this form is bounded for CI and asserts what must hold at any size: no 5xx, no
transport error, every request answered with a status that is right for it, including while
the model is reloaded from a new version written into its directory.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import require

require("fastapi")

from dotrec.bench import loadtest as lt  # noqa: E402
from dotrec.models import load_seen  # noqa: E402
from dotrec.recommend import Recommender  # noqa: E402
from tests.serve.test_faults import _retrain_into, int_id_model_dir  # noqa: E402

REQUESTS = 3000
CONNECTIONS = 32
RELOADS = 3


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (Linux /proc/net/tcp*)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port and len(addr) == width:
                found.add(addr)
    return found


@pytest.mark.slow
def test_load_with_hostile_requests_and_reloads(tmp_path: Path) -> None:
    served = int_id_model_dir(tmp_path / "served")
    seen = load_seen(served)
    assert seen is not None
    probes = lt.request_mix(
        seen.users.ids.tolist(), seen.items.ids[0], REQUESTS, unknown=0.02, hostile=0.05, seed=1
    )
    kinds = {p.kind for p in probes}
    assert kinds == {"known", "unknown", "hostile"}
    port = lt.free_port()
    base = f"http://127.0.0.1:{port}"
    proc = lt.start_server(served, port)
    reloads: list[int] = []
    versions: list[Recommender] = []

    def new_versions() -> None:
        for v in range(RELOADS):
            versions.append(_retrain_into(served, seed=100 + v))
            reloads.append(httpx.post(base + "/admin/reload", timeout=120).status_code)

    try:
        lt.wait_ready(proc, base)
        if sys.platform == "linux":
            # Default host: bound to 127.0.0.1 only (0100007F), not to every interface.
            assert listening_addresses(port) == {"0100007F"}
        result = lt.with_background(new_versions, lambda: lt.run_load(base, probes, CONNECTIONS))
        last = httpx.get(base + "/users/1004/recommendations?k=5").json()
    finally:
        lt.stop_server(proc)
    summary = result.summary()
    assert result.requests == REQUESTS and sum(result.statuses.values()) == REQUESTS
    assert result.server_errors == 0 and result.transport_errors == 0, summary
    assert not result.unexpected, summary
    assert reloads == [200] * RELOADS
    items, _ = versions[-1].recommend("1004", 5)
    assert [x["item_id"] for x in last["items"]] == items.tolist()


@pytest.mark.slow
def test_explicit_host_binds_where_asked(tmp_path: Path, mf_dir: Path) -> None:
    d = tmp_path / "mf"
    shutil.copytree(mf_dir, d)
    port = lt.free_port()
    proc = lt.start_server(d, port, extra=["--host", "0.0.0.0"])
    try:
        lt.wait_ready(proc, f"http://127.0.0.1:{port}")
        assert proc.stderr is not None
        if sys.platform == "linux":
            assert listening_addresses(port) == {"00000000"}
    finally:
        lt.stop_server(proc)
    assert b"reachable beyond this machine" in proc.stderr.read()

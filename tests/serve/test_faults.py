"""The service under hostile input, reloads and bind rules (issue 8)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require

require("fastapi")
from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from dotrec.bench.loadtest import CLIENT_ERROR, NOT_FOUND, hostile_paths  # noqa: E402
from dotrec.data.interactions import Interactions  # noqa: E402
from dotrec.data.synthetic import SyntheticConfig, generate  # noqa: E402
from dotrec.errors import ConfigError  # noqa: E402
from dotrec.models import MatrixFactorization  # noqa: E402
from dotrec.recommend import Recommender  # noqa: E402
from dotrec.serve import create_app  # noqa: E402
from dotrec.serve.app import is_loopback  # noqa: E402
from dotrec.serve.server import check_host, resolves_to_loopback  # noqa: E402

LOCAL = ("127.0.0.1", 50000)


def int_id_model_dir(path: Path, seed: int = 0) -> Path:
    """An MF over integer raw ids 1000.. (ids are parsed as integers, like MovieLens)."""
    base = generate(
        SyntheticConfig(n_users=120, n_items=90, dim=8, interactions_per_user=10, seed=0)
    )
    data = Interactions.from_ids(
        base.user_index.astype(np.int64) + 1000, base.item_index.astype(np.int64) + 1000
    )
    MatrixFactorization(embedding_dim=8, epochs=4, learning_rate=0.05, seed=seed, threads=1).fit(
        data
    ).save(path, dataset="ints", train=data)
    return path


@pytest.fixture(scope="module")
def int_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return int_id_model_dir(tmp_path_factory.mktemp("ints") / "mf")


@pytest.mark.parametrize("fixture,user,item", [("mf_dir", "u0", "i0"), ("int_dir", "1000", "1000")])
def test_hostile_requests_get_4xx(
    request: pytest.FixtureRequest, fixture: str, user: str, item: str
) -> None:
    client = TestClient(create_app(request.getfixturevalue(fixture)), raise_server_exceptions=False)
    probes = hostile_paths(user, item)
    assert len(probes) >= 20
    for p in probes:
        r = client.get(p.path)
        assert r.status_code in p.expected, (p.path, r.status_code, r.text[:200])
        assert r.status_code < 500
        if r.status_code in NOT_FOUND and p.path.startswith("/users/"):
            body = r.json()
            assert set(body) >= {"detail"}  # JSON, never a stack trace
    # The same known ids answer normally: only the hostile part was refused.
    assert client.get(f"/users/{user}/recommendations?k=3").status_code == 200


def test_integer_ids_tolerate_padding_but_not_other_spellings(int_dir: Path) -> None:
    client = TestClient(create_app(int_dir))
    assert client.get("/users/%201000%20/recommendations").status_code == 200
    for bad in ("+1000", "1_000", "1000.0", "%D9%A1000", "0x3e8", "9" * 30):
        assert client.get(f"/users/{bad}/recommendations").status_code == 404, bad


def test_hostile_probe_expectations_are_client_errors() -> None:
    # Guards the load test's oracle itself: no hostile probe may accept a 2xx or 5xx.
    for p in hostile_paths("u", "i"):
        assert p.expected <= CLIENT_ERROR


def serve_copy(model_dir: Path, tmp_path: Path) -> tuple[Path, FastAPI]:
    """A copy of ``model_dir`` (free to be replaced by new versions) and an app serving it."""
    served = tmp_path / "served"
    shutil.copytree(model_dir, served)
    return served, create_app(served)


def _retrain_into(model_dir: Path, seed: int) -> Recommender:
    """Write a new version of the model (other seed) into ``model_dir`` the way train does."""
    tmp = model_dir.with_name(model_dir.name + f"-v{seed}")
    int_id_model_dir(tmp, seed=seed)
    from dotrec.artifacts import FORMAT, META_FILE, replace_dir

    replace_dir(tmp, model_dir, META_FILE, FORMAT)
    return Recommender.from_dir(model_dir)


def test_reload_swaps_to_the_new_version(tmp_path: Path, int_dir: Path) -> None:
    served, app = serve_copy(int_dir, tmp_path)
    client = TestClient(app, client=LOCAL)
    old_state = app.state.serving
    before = client.get("/users/1003/recommendations?k=5").json()
    new_rec = _retrain_into(served, seed=7)
    r = client.post("/admin/reload")
    assert r.status_code == 200, r.text
    assert r.json()["loaded_at"] >= old_state.loaded_at and app.state.serving is not old_state
    after = client.get("/users/1003/recommendations?k=5").json()
    items, _ = new_rec.recommend("1003", 5)
    assert [x["item_id"] for x in after["items"]] == items.tolist()
    assert after != before


def test_reload_of_a_corrupt_version_keeps_serving_the_old_one(
    tmp_path: Path, int_dir: Path
) -> None:
    served, app = serve_copy(int_dir, tmp_path)
    client = TestClient(app, client=LOCAL)
    state = app.state.serving
    before = client.get("/users/1001/recommendations").json()
    arrays = served / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[:-100])  # truncated, as by a crash mid-copy
    r = client.post("/admin/reload")
    assert r.status_code == 409 and r.json()["error"] == "reload_failed"
    assert "arrays.npz" in r.json()["detail"]
    assert app.state.serving is state
    assert client.get("/users/1001/recommendations").json() == before


def test_reload_is_refused_to_remote_clients(int_dir: Path) -> None:
    app = create_app(int_dir)
    state = app.state.serving
    r = TestClient(app, client=("203.0.113.9", 40000)).post("/admin/reload")
    assert r.status_code == 403 and app.state.serving is state


def test_requests_during_reloads_never_fail(tmp_path: Path, int_dir: Path) -> None:
    served, app = serve_copy(int_dir, tmp_path)
    client = TestClient(app, client=LOCAL)
    stop = threading.Event()
    statuses: list[int] = []

    def hammer() -> None:
        c = TestClient(app)
        while not stop.is_set():
            statuses.append(c.get("/users/1002/recommendations?k=10").status_code)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        states = [app.state.serving]  # held, so that no two can share an id()
        for _ in range(5):
            assert client.post("/admin/reload").status_code == 200
            states.append(app.state.serving)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len({id(s) for s in states}) == 6 and len(statuses) > 0
    assert set(statuses) == {200}


@pytest.mark.parametrize(
    "host,loop",
    [
        ("127.0.0.1", True),
        ("127.5.5.5", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("203.0.113.9", False),
        ("", False),
    ],
)
def test_loopback_detection(host: str, loop: bool) -> None:
    assert resolves_to_loopback(host) is loop
    if host != "localhost":
        assert is_loopback(host) is loop


def test_binding_beyond_loopback_needs_an_explicit_host() -> None:
    check_host("127.0.0.1", allow_remote=False)
    check_host("localhost", allow_remote=False)
    for host in ("0.0.0.0", "::", "203.0.113.9"):
        with pytest.raises(ConfigError, match="refusing to listen"):
            check_host(host, allow_remote=False)
        check_host(host, allow_remote=True)

"""The HTTP service: every endpoint, 404/422 errors, the same answers as Recommender."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import require

require("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from dotrec.errors import ConfigError  # noqa: E402
from dotrec.models import load_model, load_seen  # noqa: E402
from dotrec.recommend import Recommender, _memory_mapped  # noqa: E402
from dotrec.retrieval import build_index, save_index  # noqa: E402
from dotrec.serve import MAX_K, create_app  # noqa: E402
from dotrec.serve import app as app_module  # noqa: E402
from dotrec.serve.app import ENV_MMAP, ENV_MODEL_DIR, app_from_env  # noqa: E402


@pytest.fixture(scope="module")
def hnsw_dir(tmp_path_factory: pytest.TempPathFactory, mf_dir: Path) -> Path:
    d = tmp_path_factory.mktemp("served") / "mf"
    shutil.copytree(mf_dir, d)
    save_index(build_index(load_model(d), "hnsw", recall_queries=50), d)
    return d


@pytest.fixture(scope="module")
def client(hnsw_dir: Path) -> TestClient:
    return TestClient(create_app(hnsw_dir, "hnsw"))


def test_recommendations_match_the_recommender(client: TestClient, hnsw_dir: Path) -> None:
    rec = Recommender.from_dir(hnsw_dir, "hnsw")
    for user_id, k, exclude in (("u0", 10, True), ("u7", 3, False), ("u42", 50, True)):
        r = client.get(
            f"/users/{user_id}/recommendations",
            params={"k": k, "exclude_seen": str(exclude).lower()},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["user_id"] == user_id and body["k"] == k and body["exclude_seen"] is exclude
        items, scores = rec.recommend(user_id, k, exclude_seen=exclude)
        assert [x["item_id"] for x in body["items"]] == items.tolist()
        assert [x["score"] for x in body["items"]] == pytest.approx(scores.tolist(), abs=1e-6)


def test_exclude_seen_default_never_returns_training_items(
    client: TestClient, hnsw_dir: Path
) -> None:
    seen = load_seen(hnsw_dir)
    assert seen is not None
    for user_id in seen.users.ids[:40]:
        trained = set(seen.items.external(seen.items_of(seen.users.index(user_id))).tolist())
        body = client.get(f"/users/{user_id}/recommendations?k=30").json()
        assert len(body["items"]) == 30
        assert not trained & {x["item_id"] for x in body["items"]}


def test_similar_items_match_the_recommender(client: TestClient, hnsw_dir: Path) -> None:
    items, sims = Recommender.from_dir(hnsw_dir).similar_items("i5", 4)
    body = client.get("/items/i5/similar?k=4").json()
    assert [x["item_id"] for x in body["items"]] == items.tolist()
    assert [x["score"] for x in body["items"]] == pytest.approx(sims.tolist(), abs=1e-6)


@pytest.mark.parametrize(
    "url,error",
    [("/users/nobody/recommendations", "unknown_user"), ("/items/nothing/similar", "unknown_item")],
)
def test_unknown_ids_are_404_json(client: TestClient, url: str, error: str) -> None:
    r = client.get(url)
    assert r.status_code == 404
    assert r.json()["error"] == error and "unknown" in r.json()["detail"]


@pytest.mark.parametrize("k", ["0", "-1", str(MAX_K + 1), "ten", "2.5"])
def test_bad_k_is_422(client: TestClient, k: str) -> None:
    assert client.get(f"/users/u0/recommendations?k={k}").status_code == 422
    assert client.get(f"/items/i0/similar?k={k}").status_code == 422


def test_k_above_catalog_returns_every_eligible_item(client: TestClient, hnsw_dir: Path) -> None:
    n_items = load_model(hnsw_dir).n_items
    assert n_items < MAX_K
    body = client.get(f"/users/u3/recommendations?k={MAX_K}&exclude_seen=false").json()
    assert len(body["items"]) == n_items


def test_health_docs_and_metrics(client: TestClient, hnsw_dir: Path) -> None:
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["model"] == "mf" and h["index"] == "hnsw"
    assert h["n_items"] == load_model(hnsw_dir).n_items
    spec = client.get("/openapi.json").json()
    assert {
        "/users/{user_id}/recommendations",
        "/items/{item_id}/similar",
        "/healthz",
        "/metrics",
    } <= set(spec["paths"])
    assert client.get("/docs").status_code == 200
    before = client.get("/metrics").text
    client.get("/users/u1/recommendations")
    client.get("/users/nobody/recommendations")
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text

    def count(line_start: str, text: str) -> int:
        return sum(
            int(float(ln.rsplit(" ", 1)[1]))
            for ln in text.splitlines()
            if ln.startswith(line_start)
        )

    route = 'route="/users/{user_id}/recommendations"'
    ok = f'dotrec_http_requests_total{{{route},method="GET",status="200"}}'
    missing = f'dotrec_http_requests_total{{{route},method="GET",status="404"}}'
    assert count(ok, text) == count(ok, before) + 1
    assert count(missing, text) == count(missing, before) + 1
    assert "# TYPE dotrec_http_request_duration_seconds histogram" in text
    inf = f'dotrec_http_request_duration_seconds_bucket{{{route},le="+Inf"}}'
    total = f"dotrec_http_request_duration_seconds_count{{{route}}}"
    assert count(inf, text) == count(total, text) >= 2
    assert "dotrec_model_info{" in text and 'index="hnsw"' in text


def test_learned_model_service(popularity_dir: Path) -> None:
    c = TestClient(create_app(popularity_dir))
    assert c.get("/healthz").json()["index"] == "score_all"
    body = c.get("/users/u0/recommendations?k=5").json()
    items, _ = Recommender.from_dir(popularity_dir).recommend("u0", 5)
    assert [x["item_id"] for x in body["items"]] == items.tolist()
    r = c.get("/items/i0/similar")
    assert r.status_code == 501 and r.json()["error"] == "not_supported"


def test_state_is_one_shared_object(hnsw_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(hnsw_dir)
    state = app.state.serving
    assert state.index_kind == "exact"

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a request loaded the model again")

    # Requests only read the loaded state: with every loader broken they still answer, and the
    # state is the same object afterwards.
    import dotrec.serve.app as serve_app

    monkeypatch.setattr(serve_app, "load_state", no_loading)
    monkeypatch.setattr(Recommender, "from_dir", no_loading)
    c = TestClient(app)
    for path in ("/users/u0/recommendations", "/items/i3/similar", "/healthz"):
        assert c.get(path).status_code == 200, path
    assert c.post("/recommendations", json={"items": ["i3"]}).status_code == 200
    assert app.state.serving is state


def test_app_factory_reads_the_environment(hnsw_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_MODEL_DIR, raising=False)
    with pytest.raises(ConfigError, match=ENV_MODEL_DIR):
        app_from_env()
    monkeypatch.setenv(ENV_MODEL_DIR, str(hnsw_dir))
    monkeypatch.setenv("DOTREC_SERVE_INDEX", "hnsw")
    monkeypatch.setenv("DOTREC_SERVE_THREADS", "2")
    limits: list[int] = []  # the worker caps its thread pools (not applied to the test process)
    monkeypatch.setattr(app_module, "limit_threads", limits.append)
    app = app_from_env()
    assert app.state.serving.index_kind == "hnsw" and app.state.threads == 2 and limits == [2]


def test_limit_threads_caps_the_blas_pools() -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=None):  # restores the test process's pools afterwards
        app_module.limit_threads(1)
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")


def test_loading_builds_what_requests_would_build(hnsw_dir: Path) -> None:
    # The id tables, the seen rows and the item norms of similar items exist before the first
    # request,
    # and the loaded objects are out of the garbage collector's way, so no request after a
    # load or reload pays for them.
    import gc

    gc.unfreeze()
    rec = create_app(hnsw_dir).state.serving.recommender
    assert rec.users._lookup is not None and rec.items._lookup is not None
    assert rec._inverse_norms is not None
    assert rec.seen is not None and "csr" in vars(rec.seen)
    assert gc.get_freeze_count() > 0  # unfrozen above: the load froze what it holds


def test_openapi_still_documents_the_answers(client: TestClient) -> None:
    # Answers are written without pydantic on the request path; the schema stays documented.
    spec = client.get("/openapi.json").json()
    ok = spec["paths"]["/users/{user_id}/recommendations"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/Recommendations")
    assert "ScoredItem" in spec["components"]["schemas"]


def test_batch_answers_equal_one_at_a_time(client: TestClient) -> None:
    users = ["u0", "u7", "u42", "u7"]
    for k, exclude in ((10, True), (3, False)):
        body = {"users": users, "k": k, "exclude_seen": exclude}
        r = client.post("/users/recommendations", json=body)
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["k"] == k and [x["user_id"] for x in got["results"]] == users
        for one in got["results"]:
            single = client.get(
                f"/users/{one['user_id']}/recommendations",
                params={"k": k, "exclude_seen": str(exclude).lower()},
            ).json()
            assert one == single
    assert (
        client.post("/users/recommendations", json={"users": ["u0", "nobody"]}).status_code == 404
    )
    assert client.post("/users/recommendations", json={"users": []}).status_code == 422


def test_cheap_searches_run_on_the_event_loop_and_the_rest_in_threads(
    hnsw_dir: Path, mf_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An approximate index answers in microseconds: a thread hand-off would cost more than the
    # search. An exact scan (or a learned model scoring the catalog) must not hold up the loop.
    import threading

    threads: list[str] = []
    real = Recommender.recommend

    def spy(self: Recommender, *args: object, **kw: object) -> object:
        threads.append(threading.current_thread().name)
        return real(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Recommender, "recommend", spy)
    loop_thread: list[str] = []

    async def loop_name() -> str:
        loop_thread.append(threading.current_thread().name)
        return "ok"

    for folder, kind, inline in ((hnsw_dir, "hnsw", True), (mf_dir, None, False)):
        app = create_app(folder, kind)
        assert app.state.serving.inline is inline
        app.get("/_loop_thread")(loop_name)
        with TestClient(app) as c:
            c.get("/_loop_thread")
            assert c.get("/users/u3/recommendations?k=4").status_code == 200
        assert (threads[-1] == loop_thread[-1]) is inline


def test_memory_mapped_model_serves_the_same_answers(hnsw_dir: Path) -> None:
    app = create_app(hnsw_dir, "hnsw", mmap=True)
    rec = app.state.serving.recommender
    factors = rec.model.item_factors
    assert _memory_mapped(factors) and not factors.flags.writeable
    assert rec._inverse_norms is None  # loading does not read the whole catalog
    client = TestClient(app, client=("127.0.0.1", 40000))
    ref = Recommender.from_dir(hnsw_dir, "hnsw")
    for user_id in ("u0", "u7", "u42"):
        items, scores = ref.recommend(user_id, 10)
        body = client.get(f"/users/{user_id}/recommendations?k=10").json()
        assert [x["item_id"] for x in body["items"]] == items.tolist()
        assert [x["score"] for x in body["items"]] == pytest.approx(scores.tolist(), abs=1e-6)
    items, sims = ref.similar_items("i5", 4)
    body = client.get("/items/i5/similar?k=4").json()  # the norms are computed here
    assert [x["item_id"] for x in body["items"]] == items.tolist()
    assert [x["score"] for x in body["items"]] == pytest.approx(sims.tolist(), abs=1e-6)
    assert rec._inverse_norms is not None
    assert client.post("/admin/reload").status_code == 200
    assert _memory_mapped(app.state.serving.recommender.model.item_factors)


def test_app_factory_reads_mmap_from_the_environment(
    hnsw_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_MODEL_DIR, str(hnsw_dir))
    monkeypatch.setattr(app_module, "limit_threads", lambda threads: None)
    monkeypatch.setenv(ENV_MMAP, "1")
    assert _memory_mapped(app_from_env().state.serving.recommender.model.item_factors)
    monkeypatch.setenv(ENV_MMAP, "")
    assert not _memory_mapped(app_from_env().state.serving.recommender.model.item_factors)

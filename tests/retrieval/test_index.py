"""Item indexes: bias folding, the MIPS transform, ANN recall, exclusions, save/load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dotrec.bench.serving import sample_catalog
from dotrec.errors import ArtifactError, ConfigError
from dotrec.models import load_model
from dotrec.models.base import DotProductModel
from dotrec.retrieval import (
    ExactIndex,
    HNSWIndex,
    IVFIndex,
    IVFPQIndex,
    build_index,
    index_path,
    load_index,
    recall_at_k,
    save_index,
)
from dotrec.retrieval.ann import _FaissIndex
from dotrec.retrieval.transform import (
    fold_items,
    fold_queries,
    mips_to_l2_items,
    mips_to_l2_queries,
)
from tests.retrieval.conftest import brute_force_recall, make_model_dir, trained_mf


@pytest.fixture(scope="module")
def mf() -> DotProductModel:
    return trained_mf()


def test_bias_folding_keeps_the_models_ranking(mf: DotProductModel) -> None:
    users = np.arange(0, mf.n_users, 97)
    full = mf.score_all(users)
    idx, scores = ExactIndex(mf.item_factors, mf.item_bias).search(mf.user_factors[users], 20)
    offset = (mf.user_bias[users] + mf.global_bias)[:, None]
    # The index scores are the model's minus the per-user constant; the order is the model's.
    np.testing.assert_allclose(scores + offset, np.take_along_axis(full, idx, 1), atol=1e-5)
    np.testing.assert_allclose(scores + offset, -np.sort(-full, axis=1)[:, :20], atol=1e-5)
    folded = fold_queries(mf.user_factors[users]) @ fold_items(mf.item_factors, mf.item_bias).T
    np.testing.assert_allclose(folded + offset, full, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 60), d=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_mips_to_l2_keeps_the_inner_product_order(n: int, d: int, seed: int) -> None:
    r = np.random.default_rng(seed)
    items = (r.standard_normal((n, d)) * r.uniform(0.1, 5, (n, 1))).astype(np.float32)
    q = r.standard_normal((1, d)).astype(np.float32)
    aug, m = mips_to_l2_items(items)
    assert np.allclose(np.linalg.norm(aug, axis=1), m, rtol=1e-4)
    dist = ((mips_to_l2_queries(q) - aug) ** 2).sum(1)
    ip = (items @ q[0]).astype(np.float64)
    # |q - x|^2 = |q|^2 + M^2 - 2 <q, x>: the identity that makes ascending L2 = descending IP.
    np.testing.assert_allclose(dist, (q**2).sum() + m * m - 2 * ip, rtol=1e-4, atol=1e-3)


@pytest.fixture(scope="module")
def catalog() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """10^5 items of dim 32 drawn from a trained MF's bias-folded item vectors."""
    return sample_catalog(trained_mf(dim=32), 100_000, 300, seed=0)


def test_hnsw_default_recall_on_1e5_items(catalog: tuple[np.ndarray, ...]) -> None:
    vectors, bias, queries = catalog
    index = HNSWIndex(vectors, bias, threads=2)
    assert recall_at_k(index, queries, 10) >= 0.95


def test_ivf_default_recall_on_1e5_items(catalog: tuple[np.ndarray, ...]) -> None:
    vectors, bias, queries = catalog
    index = IVFIndex(vectors, bias, threads=2)
    assert index.nlist == int(4 * np.sqrt(100_000))
    assert recall_at_k(index, queries, 10) >= 0.95


@pytest.mark.parametrize(
    "cls,params",
    [
        (HNSWIndex, {"metric": "ip"}),
        (HNSWIndex, {"metric": "l2"}),
        (IVFIndex, {"metric": "l2"}),
        (IVFIndex, {"metric": "ip"}),
        (IVFPQIndex, {}),
    ],
)
def test_ann_excludes_and_scores_exactly(
    mf: DotProductModel, cls: type[_FaissIndex], params: dict[str, str]
) -> None:
    index = cls(mf.item_factors, mf.item_bias, **params)
    exact = ExactIndex(mf.item_factors, mf.item_bias)
    q = mf.user_factors[:30]
    top, _ = exact.search(q, 15)
    exclude = [t[::2] for t in top]  # the best items: an ANN that ignored them would show it
    idx, scores = index.search(q, 10, exclude=exclude)
    for row, ex in zip(idx, exclude):
        assert not np.isin(row, ex).any()
    valid = idx >= 0
    expected = (
        np.einsum("bkd,bd->bk", mf.item_factors[np.maximum(idx, 0)], q)
        + mf.item_bias[np.maximum(idx, 0)]
    )
    np.testing.assert_allclose(scores[valid], expected[valid], rtol=1e-5, atol=1e-5)
    assert np.all(np.diff(scores, axis=1)[valid[:, 1:]] <= 0)  # best first
    e_idx, _ = exact.search(q, 10, exclude=exclude)
    assert np.mean([len(np.intersect1d(a, b)) for a, b in zip(idx, e_idx)]) >= 9.0


def test_build_reports_recall_and_rejects_learned_models(
    mf: DotProductModel, popularity_dir: Path
) -> None:
    index = build_index(mf, "hnsw", ef_search=16, recall_queries=200)
    info = index.build_info
    # The reported recall is the one a brute-force top-10 gives on the same sampled users
    # (measured 0.972; a broken graph or a recall computed against itself would differ).
    recall = brute_force_recall(mf, index, 200)
    assert info["recall@10"] == pytest.approx(recall) and recall >= 0.9
    assert info["recall_queries"] == 200
    assert info["build_seconds"] > 0 and info["memory_bytes"] > mf.item_factors.nbytes
    assert build_index(mf, "exact").build_info["recall@10"] == 1.0
    with pytest.raises(ConfigError, match="not a dot-product model"):
        build_index(load_model(popularity_dir), "exact")
    with pytest.raises(ConfigError, match="unknown index kind"):
        build_index(mf, "lsh")
    with pytest.raises(ConfigError, match="metric"):
        build_index(mf, "ivf", metric="cosine")


def test_ivfpq_default_recall_on_1e5_items(catalog: tuple[np.ndarray, ...]) -> None:
    vectors, bias, queries = catalog
    index = IVFPQIndex(vectors, bias, threads=2)
    assert (index.m, index.refine) == (17, 10)  # 2 dimensions of [q, b, sqrt(M^2 - |.|^2)] each
    # 17 code bytes, an 8-byte id and the centroids' share: 27 bytes per item against the 140
    # of an IVF-flat over the same 33 floats (plus id)
    assert index.index_bytes() / len(vectors) < 28
    assert recall_at_k(index, queries, 10) >= 0.95
    index.set_search_params(refine=1)  # ranked by the codes alone: lossy, and measurably so
    assert recall_at_k(index, queries, 10) < 0.95


def test_ivfpq_streams_a_memory_mapped_catalog(tmp_path: Path) -> None:
    # Built from a read-only memmap in chunks smaller than the catalog, the index is the one an
    # in-memory build gives (same seed: same sample, cells and codes), and searches agree.
    vectors, bias, queries = sample_catalog(trained_mf(dim=8), 20_000, 50, seed=1)
    path = tmp_path / "items.npy"
    np.save(path, vectors)
    mapped = np.load(path, mmap_mode="r")
    streamed = IVFPQIndex(mapped, bias, nlist=64, chunk=3_000, seed=3)
    assert np.shares_memory(streamed.vectors, mapped)  # no copy of the catalog was made
    whole = IVFPQIndex(vectors, bias, nlist=64, chunk=1 << 20, seed=3)
    for a, b in zip(streamed.search(queries, 10), whole.search(queries, 10)):
        np.testing.assert_array_equal(a, b)
    assert recall_at_k(streamed, queries, 10) >= 0.9
    graph = IVFPQIndex(vectors, bias, nlist=64, quantizer="hnsw", seed=3)  # 10^8-item layout
    assert graph._centroids is None and recall_at_k(graph, queries, 10) >= 0.9
    cells = graph._faiss.downcast_index(graph._faiss.extract_index_ivf(graph._index).quantizer)
    assert cells.hnsw.efSearch == 64  # searches cover 2 * nprobe cells (adds used 16)
    with pytest.raises(ConfigError, match="train_size=50 is below"):
        IVFPQIndex(vectors, bias, nlist=64, train_size=50)
    with pytest.raises(ConfigError, match="quantizer"):
        IVFPQIndex(vectors, bias, quantizer="lsh")


@pytest.mark.parametrize("kind", ["exact", "hnsw", "ivf", "ivfpq"])
def test_save_load_round_trip_without_rebuild(
    tmp_path: Path, mf_dir: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = tmp_path / "mf"
    shutil.copytree(mf_dir, model_dir)
    model = load_model(model_dir)
    index = build_index(model, kind, recall_queries=100)
    path = save_index(index, model_dir)
    assert path == index_path(model_dir, kind)
    meta = json.loads((path / "index.json").read_text())
    assert meta["kind"] == kind and meta["params"] == index.params()
    assert not list(model_dir.glob(".index-*"))  # no temporary directory left behind

    def no_rebuild(self: object) -> None:
        raise AssertionError("load_index rebuilt the index")

    monkeypatch.setattr(_FaissIndex, "_build", no_rebuild)
    loaded = load_index(model_dir, kind, model)
    assert loaded.params() == index.params() and loaded.build_info == index.build_info
    q = model.user_factors[:20]
    for a, b in zip(index.search(q, 10), loaded.search(q, 10)):
        np.testing.assert_array_equal(a, b)


def test_load_refuses_stale_corrupt_and_missing(tmp_path: Path) -> None:
    model_dir = make_model_dir(tmp_path / "mf")
    model = load_model(model_dir)
    with pytest.raises(ArtifactError, match="no hnsw index; build one"):
        load_index(model_dir, "hnsw", model)
    save_index(build_index(model, "hnsw", recall_queries=10), model_dir)
    blob = index_path(model_dir, "hnsw") / "index.faiss"
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_index(model_dir, "hnsw", model)
    save_index(build_index(model, "hnsw", recall_queries=10), model_dir)
    model.item_bias[0] += 1.0  # "retrain": new arrays in the same directory
    model.save(model_dir)
    save_index(build_index(model, "ivf", recall_queries=10), model_dir)
    assert not index_path(model_dir, "hnsw").exists()  # saving a model replaces its directory
    meta_path = index_path(model_dir, "ivf") / "index.json"
    meta = json.loads(meta_path.read_text())
    meta["model_sha256"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="built for other model arrays"):
        load_index(model_dir, "ivf", model)


def test_search_params_change_without_rebuild(mf: DotProductModel) -> None:
    index = HNSWIndex(mf.item_factors, mf.item_bias, ef_search=16)
    index.set_search_params(ef_search=200)
    assert index.params()["ef_search"] == 200
    with pytest.raises(ConfigError, match="ef_search"):
        index.set_search_params(nprobe=3)
    with pytest.raises(ConfigError, match="no search parameters"):
        ExactIndex(mf.item_factors).set_search_params(ef_search=3)
    with pytest.raises(ConfigError, match="nprobe must be > 0"):
        IVFIndex(mf.item_factors, nprobe=0)


@pytest.mark.parametrize("cls", [IVFIndex, IVFPQIndex])
def test_ivf_overfetch_equals_one_at_a_time_and_the_selector_search(
    cls: type[_FaissIndex], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dotrec.retrieval import ann

    vectors, bias, queries = sample_catalog(trained_mf(dim=16), 30_000, 40, seed=4)
    index = cls(vectors, bias, nprobe=4)
    exact = ExactIndex(vectors, bias)
    top, _ = exact.search(queries, 60)
    r = np.random.default_rng(0)
    # the best items excluded (an over-fetch that ignored them would return them), 0-60 each
    exclude = [t[: r.integers(0, 60)] for t in top]
    batch = index.search(queries, 10, exclude=exclude)
    for i in range(len(queries)):
        one = index.search(queries[i : i + 1], 10, exclude=exclude[i : i + 1])
        np.testing.assert_array_equal(one[0][0], batch[0][i])
        assert not np.isin(batch[0][i], exclude[i]).any()
    monkeypatch.setattr(ann, "OVERFETCH_MAX", 0)  # every query through an id selector
    selector = index.search(queries, 10, exclude=exclude)
    if cls is IVFIndex:  # exact distances in the probed cells: the very same answer
        np.testing.assert_array_equal(selector[0], batch[0])
    else:  # codes: over-fetching re-scores a superset, never a worse top-10
        assert (batch[1][:, -1] >= selector[1][:, -1] - 1e-6).all()


@pytest.mark.parametrize("cls", [IVFIndex, IVFPQIndex])
def test_cells_chosen_by_a_matrix_product_are_faiss_own(cls: type[_FaissIndex]) -> None:
    vectors, bias, queries = sample_catalog(trained_mf(dim=16), 30_000, 200, seed=5)
    index = cls(vectors, bias, nprobe=6)
    assert index._centroids is not None  # type: ignore[attr-defined]
    fq = index._faiss_queries(queries)
    ours = index._neighbours(fq, 20)
    theirs = index._index.search(fq, 20)[1]
    # the same probed cells give the same candidates; a rounding difference between the two
    # distance computations could only swap two cells at exactly equal distance
    same = np.mean([np.array_equal(a, b) for a, b in zip(ours, theirs)])
    assert same >= 0.99


def test_ivfpq_sq8_rescoring_store(tmp_path: Path) -> None:
    """8-bit codes in memory re-score the candidates: close to the exact re-scoring (recall
    and scores), exclusions kept, batch equals one at a time, saved and loaded as one file."""
    vectors, bias, queries = sample_catalog(trained_mf(dim=16), 30_000, 100, seed=6)
    exact_rescore = IVFPQIndex(vectors, bias, nlist=128, nprobe=16, seed=2)
    sq8 = IVFPQIndex(vectors, bias, nlist=128, nprobe=16, seed=2, rescore="sq8")
    assert sq8.params()["rescore"] == "sq8" and exact_rescore.params()["rescore"] == "exact"
    # one byte per faiss dimension (d + 2, padded to m) on top of the codes
    assert sq8.index_bytes() - exact_rescore.index_bytes() == 30_000 * sq8._faiss_dim()
    r_exact = recall_at_k(exact_rescore, queries, 10)
    r_sq8 = recall_at_k(sq8, queries, 10)
    assert r_exact >= 0.9 and r_sq8 >= r_exact - 0.03, (r_exact, r_sq8)
    sq8.set_search_params(refine=1)  # the codes alone rank worse: the store does the work
    assert recall_at_k(sq8, queries, 10) < r_sq8 - 0.05
    sq8.set_search_params(refine=10)
    idx, scores = sq8.search(queries, 10)
    true = np.einsum("bkd,bd->bk", vectors[idx], queries) + bias[idx]
    spread = float(np.ptp(vectors @ queries[0] + bias))
    assert np.abs(scores - true).max() <= 0.01 * spread  # the codes' scores, near the exact
    assert np.all(np.diff(scores, axis=1) <= 0)
    top, _ = ExactIndex(vectors, bias).search(queries, 30)
    exclude = [t[::3] for t in top]
    batch = sq8.search(queries, 10, exclude=exclude)
    for i in range(0, len(queries), 7):
        one = sq8.search(queries[i : i + 1], 10, exclude=exclude[i : i + 1])
        np.testing.assert_array_equal(one[0][0], batch[0][i])
        assert not np.isin(batch[0][i], exclude[i]).any()
    # an exact-rescore index given the store later answers as one built with it
    exact_rescore.add_sq8_store()
    assert exact_rescore.rescore == "sq8"
    for a, b in zip(exact_rescore.search(queries, 10), sq8.search(queries, 10)):
        np.testing.assert_array_equal(a, b)
    # the codes written into the presized buffer are faiss's own add's
    faiss, max_sq = sq8._faiss, sq8._max_sq()
    ref = faiss.IndexScalarQuantizer(sq8._faiss_dim(), faiss.ScalarQuantizer.QT_8bit)
    ref.train(sq8._training_rows(max_sq))
    ref.add(sq8._rows(slice(0, len(vectors)), max_sq))
    assert sq8._store.ntotal == ref.ntotal == len(vectors)
    np.testing.assert_array_equal(
        sq8._store_codes()[0].reshape(-1), faiss.vector_to_array(ref.codes)
    )
    with pytest.raises(ConfigError, match="rescore"):
        IVFPQIndex(vectors, bias, nlist=128, rescore="fp16")


def test_ivfpq_sq8_store_saved_and_loaded(
    tmp_path: Path, mf_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = tmp_path / "mf"
    shutil.copytree(mf_dir, model_dir)
    model = load_model(model_dir)
    index = build_index(model, "ivfpq", rescore="sq8", recall_queries=100)
    save_index(index, model_dir)
    monkeypatch.setattr(_FaissIndex, "_build", lambda self: None)
    loaded = load_index(model_dir, "ivfpq", model)
    assert loaded._store is not None and loaded.params()["rescore"] == "sq8"  # type: ignore[attr-defined]
    q = model.user_factors[:20]
    for a, b in zip(index.search(q, 10), loaded.search(q, 10)):
        np.testing.assert_array_equal(a, b)

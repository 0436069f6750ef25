"""Recommender: raw ids in and out, seen items excluded, every backend, learned models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from dotrec.errors import ConfigError, NotSupportedError, UnknownIdError
from dotrec.models import load_model, load_seen
from dotrec.recommend import Recommender
from dotrec.retrieval import build_index, save_index
from tests.conftest import require


@pytest.fixture(scope="module")
def indexed_dir(tmp_path_factory: pytest.TempPathFactory, mf_dir: Path) -> Path:
    d = tmp_path_factory.mktemp("indexed") / "mf"
    shutil.copytree(mf_dir, d)
    model = load_model(d)
    for kind in ("hnsw", "ivf"):
        save_index(build_index(model, kind, recall_queries=50), d)
    return d


@pytest.mark.parametrize("kind", [None, "exact", "hnsw", "ivf"])
def test_exclude_seen_never_returns_a_training_item(indexed_dir: Path, kind: str | None) -> None:
    rec = Recommender.from_dir(indexed_dir, kind)
    seen = load_seen(indexed_dir)
    assert seen is not None
    for user_id in seen.users.ids:
        u = seen.users.index(user_id)
        trained = set(seen.items.external(seen.items_of(u)).tolist())
        items, scores = rec.recommend(user_id, k=20)
        assert len(items) == 20 and not trained & set(items.tolist())
        assert np.all(np.diff(scores) <= 0)


def test_scores_are_the_models_and_ids_are_raw(mf_dir: Path) -> None:
    rec = Recommender.from_dir(mf_dir)
    items, scores = rec.recommend("u5", k=10, exclude_seen=False)
    assert all(isinstance(i, str) and i.startswith("i") for i in items.tolist())
    u = rec.users.index("u5")
    idx = rec.items.indices(items)
    np.testing.assert_allclose(scores, rec.model.score(np.full(10, u), idx), atol=1e-5)
    full = rec.model.score_all([u])[0]
    np.testing.assert_allclose(scores, -np.sort(-full)[:10], atol=1e-5)


def test_k_rules_and_unknown_ids(mf_dir: Path) -> None:
    rec = Recommender.from_dir(mf_dir)
    n_seen = len(rec.seen.items_of(rec.users.index("u1")))
    items, _ = rec.recommend("u1", k=10_000)
    assert len(items) == rec.model.n_items - n_seen  # k above the catalog: every eligible item
    for bad in (0, -3, 2.0, True):
        with pytest.raises(ConfigError, match="k must be"):
            rec.recommend("u1", k=bad)  # type: ignore[arg-type]
    with pytest.raises(UnknownIdError, match="unknown user id 'nobody'") as e:
        rec.recommend("nobody")
    assert isinstance(e.value, KeyError) and str(e.value) == "unknown user id 'nobody'"
    with pytest.raises(UnknownIdError, match="unknown item id"):
        rec.similar_items("i99999")


def test_similar_items_by_cosine(mf_dir: Path) -> None:
    rec = Recommender.from_dir(mf_dir)
    items, sims = rec.similar_items("i3", k=5)
    assert "i3" not in items.tolist() and len(items) == 5
    f = rec.model.item_factors
    unit = f / np.linalg.norm(f, axis=1, keepdims=True)
    cos = unit @ unit[rec.items.index("i3")]
    cos[rec.items.index("i3")] = -np.inf
    np.testing.assert_allclose(sims, -np.sort(-cos)[:5], atol=1e-5)
    assert np.all(sims <= 1.0 + 1e-6)


def test_learned_models_rank_through_score_all(popularity_dir: Path) -> None:
    rec = Recommender.from_dir(popularity_dir)
    assert rec.index is None
    seen = rec.seen
    u = seen.users.index("u0")
    items, scores = rec.recommend("u0", k=5)
    counts = rec.model.score_all([u])[0]
    counts[seen.items_of(u)] = -np.inf
    expected = np.lexsort((np.arange(len(counts)), -counts))[:5]  # ties to the lower index
    assert items.tolist() == seen.items.external(expected).tolist()
    np.testing.assert_array_equal(scores, counts[expected])
    with pytest.raises(NotSupportedError, match="no item embedding"):
        rec.similar_items("i0")
    with pytest.raises(ConfigError, match="dot-product models"):
        Recommender.from_dir(popularity_dir, "hnsw")


def test_neumf_through_score_all(tmp_path: Path) -> None:
    require("torch")
    from dotrec.models import NeuMF
    from tests.retrieval.conftest import string_id_interactions

    data = string_id_interactions(n_users=60, n_items=50)
    model = NeuMF(factor=4, layers=[8, 4], epochs=1, threads=1).fit(data)
    rec = Recommender(model, seen=data)
    u = data.users.index("u2")
    items, scores = rec.recommend("u2", k=7)
    full = model.score_all([u])[0]
    full[data.items_of(u)] = -np.inf
    assert items.tolist() == data.items.external(np.argsort(-full, kind="stable")[:7]).tolist()
    np.testing.assert_allclose(scores, np.sort(full)[::-1][:7], rtol=1e-6)


def test_index_must_match_the_model(mf_dir: Path, popularity_dir: Path) -> None:
    model = load_model(mf_dir)
    small = build_index(model, "exact")
    small.vectors = small.vectors[:10]
    with pytest.raises(ConfigError, match="index holds 10 items"):
        Recommender(model, small)
    with pytest.raises(ConfigError, match="not a dot-product model"):
        Recommender(load_model(popularity_dir), build_index(model, "exact"))


def test_similar_items_read_a_mapped_catalog_without_copying_it(tmp_path: Path) -> None:
    # 200,000 items x 64 (51 MB): the answer of a memory-mapped model is the in-memory one,
    # ties go to the lower index, a zero vector has cosine 0, and the query allocates about
    # two catalog-length rows (norms and cosines, 1.6 MB), not a normalized copy (51 MB).
    import tracemalloc

    from dotrec.bench.serving import catalog_model

    n = 200_000
    vectors = np.random.default_rng(0).standard_normal((n, 64)).astype(np.float32)
    vectors[10] = 2.5 * vectors[3]  # same direction as item 3: cosine 1, like item 7 below
    vectors[7] = 0.5 * vectors[3]
    vectors[5] = 0.0
    model, train = catalog_model(n, 50, items=(vectors, np.zeros(n, np.float32)), seen_per_user=5)
    model.save(tmp_path / "mf", dataset="synthetic", train=train)
    mapped = Recommender.from_dir(tmp_path / "mf", mmap=True)
    tracemalloc.start()
    items, sims = mapped.similar_items(3, k=6)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * n * 4, f"peak {peak} bytes: the catalog was copied"
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-30)
    cos = unit @ unit[3]
    cos[3] = -np.inf
    expected = np.lexsort((np.arange(n), -cos))[:6]
    assert items[:2].tolist() == [7, 10]  # equal cosines (1.0): the lower index first
    assert items.tolist() == expected.tolist()
    np.testing.assert_allclose(sims, cos[expected], atol=1e-6)
    in_memory = Recommender.from_dir(tmp_path / "mf")
    again_items, again_sims = in_memory.similar_items(3, k=6)
    assert again_items.tolist() == items.tolist()
    np.testing.assert_array_equal(again_sims, sims)
    zero_items, zero_sims = mapped.similar_items(5, k=3)
    assert zero_items.tolist() == [0, 1, 2] and zero_sims.tolist() == [0.0, 0.0, 0.0]

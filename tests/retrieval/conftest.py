"""Fixtures: a small trained MF saved with raw string ids and its seen items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dotrec.data.interactions import Interactions
from dotrec.data.synthetic import SyntheticConfig, generate
from dotrec.models import MatrixFactorization, Popularity
from dotrec.models.base import DotProductModel
from dotrec.random import rng
from dotrec.retrieval.base import ItemIndex


def string_id_interactions(n_users: int = 300, n_items: int = 200, seed: int = 0) -> Interactions:
    """Synthetic interactions re-keyed by raw string ids ("u7", "i42")."""
    base = generate(
        SyntheticConfig(
            n_users=n_users, n_items=n_items, dim=8, interactions_per_user=12, seed=seed
        )
    )
    return Interactions.from_ids(
        np.char.add("u", base.user_index.astype(str)), np.char.add("i", base.item_index.astype(str))
    )


def make_model_dir(path: Path, model: str = "mf") -> Path:
    """Train ``model`` (mf or popularity) on :func:`string_id_interactions`, save it to path."""
    data = string_id_interactions()
    m = (
        MatrixFactorization(embedding_dim=16, epochs=8, learning_rate=0.05, threads=1)
        if model == "mf"
        else Popularity()
    )
    m.fit(data).save(path, dataset="synthetic-strings", train=data)
    return path


def brute_force_recall(model: DotProductModel, index: ItemIndex, n_queries: int) -> float:
    """Recall@10 of ``index`` on the users ``build_index`` samples (seed 0), against a top-10
    computed here by numpy sorting: an independent check of the figure an index reports."""
    users = np.sort(rng(0, "index_recall").choice(model.n_users, size=n_queries, replace=False))
    scores = model.user_factors[users] @ model.item_factors.T + model.item_bias
    truth = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    found, _ = index.search(model.user_factors[users], 10)
    return float(np.mean([len(np.intersect1d(t, f)) / 10 for t, f in zip(truth, found)]))


def trained_mf(dim: int = 16, seed: int = 0) -> DotProductModel:
    """An MF fitted on the default synthetic data (its factors have varied norms)."""
    return MatrixFactorization(
        embedding_dim=dim, epochs=15, learning_rate=0.02, seed=seed, threads=1
    ).fit(generate(SyntheticConfig(seed=seed)))


@pytest.fixture(scope="session")
def mf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("models") / "mf")


@pytest.fixture(scope="session")
def popularity_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("models") / "pop", "popularity")

"""The contract every model must pass: fit/score/score_all/save/load/config/seed.

Add a model by appending a factory to ``FACTORIES`` (small, fast hyperparameters) and, where
the model can learn the planted blocks, to ``LEARNERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dotrec.data.splits import Split
from dotrec.eval.protocols import evaluate_sampled
from dotrec.models import (
    GMF,
    IALS,
    MLP,
    MatrixFactorization,
    Model,
    NeuMF,
    Popularity,
    load_model,
)
from tests.conftest import planted_split

FACTORIES: dict[str, Callable[[int], Model]] = {
    "popularity": lambda seed: Popularity(),
    "mf": lambda seed: MatrixFactorization(
        embedding_dim=8,
        epochs=30,
        learning_rate=0.05,
        regularization=0.001,
        n_negatives=4,
        seed=seed,
        threads=1,
    ),
    "ials": lambda seed: IALS(
        embedding_dim=8, epochs=10, regularization=0.01, unobserved_weight=0.1, seed=seed, threads=1
    ),
    "gmf": lambda seed: GMF(factor=8, epochs=10, batch_size=64, learning_rate=0.01, seed=seed),
    "mlp": lambda seed: MLP(factor=8, epochs=10, batch_size=64, learning_rate=0.01, seed=seed),
    "neumf": lambda seed: NeuMF(factor=8, epochs=5, batch_size=64, learning_rate=0.01, seed=seed),
}
#: Models expected to reach sampled HR@10 >= 0.9 on the planted blocks.
LEARNERS = ["mf", "ials", "gmf", "mlp", "neumf"]
#: Models whose fit draws random numbers (same seed -> same model; other seed -> different).
SEEDED = ["mf", "ials", "gmf", "mlp", "neumf"]


@pytest.fixture(scope="module")
def split() -> Split:
    return planted_split()


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def fitted(request: pytest.FixtureRequest, split: Split) -> tuple[str, Model]:
    return request.param, FACTORIES[request.param](0).fit(split.train)


def test_score_shape_and_dtype(fitted: tuple[str, Model], split: Split) -> None:
    name, m = fitted
    u = np.array([0, 1, 2, 2])
    i = np.array([0, 5, 7, 7])
    s = m.score(u, i)
    assert s.shape == (4,) and s.dtype == np.float32
    if name in LEARNERS:  # a learner ranks: its scores of one user's items are not all equal
        assert np.ptp(m.score_all(np.array([0]))[0]) > 1e-3
    with pytest.raises(ValueError):
        m.score(np.array([0, 1]), np.array([0]))


def test_score_all_matches_score(fitted: tuple[str, Model], split: Split) -> None:
    _, m = fitted
    users = np.array([3, 0, 7])
    full = m.score_all(users)
    assert full.shape == (3, split.n_items)
    pairs = m.score(np.repeat(users, split.n_items), np.tile(np.arange(split.n_items), 3))
    np.testing.assert_allclose(full.reshape(-1), pairs, rtol=1e-5, atol=1e-5)


def test_save_load_round_trip(fitted: tuple[str, Model], split: Split, tmp_path: Path) -> None:
    name, m = fitted
    m.save(tmp_path / "m", dataset="planted")
    m2 = load_model(tmp_path / "m")
    assert type(m2) is type(m) and m2.name == name
    assert m2.config() == m.config()
    users = np.arange(split.n_users)
    np.testing.assert_array_equal(m2.score_all(users), m.score_all(users))
    assert type(m).load(tmp_path / "m").config() == m.config()
    mapped = load_model(tmp_path / "m", mmap=True)  # read-only arrays mapped from the file
    np.testing.assert_array_equal(mapped.score_all(users), m.score_all(users))


def test_config_round_trip(fitted: tuple[str, Model]) -> None:
    _, m = fitted
    assert type(m).from_config(m.config()).config() == m.config()


@pytest.mark.parametrize("name", SEEDED)
def test_same_seed_same_model_other_seed_differs(name: str, split: Split) -> None:
    users = np.arange(split.n_users)
    a = FACTORIES[name](3).fit(split.train).score_all(users)
    b = FACTORIES[name](3).fit(split.train).score_all(users)
    c = FACTORIES[name](4).fit(split.train).score_all(users)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", LEARNERS)
def test_learns_planted_blocks(name: str, split: Split) -> None:
    m = FACTORIES[name](0).fit(split.train)
    hr = evaluate_sampled(m, split, k=10).hr.mean()
    assert hr >= 0.9, f"{name}: HR@10 {hr:.3f} on the planted blocks"


def test_popularity_is_not_a_learner(split: Split) -> None:
    # The planted blocks have flat popularity: measured 0.267, against 0.47 for random scores
    # (mean of 10 seeds) and >= 0.9 for every learner; a Popularity that ranked by anything but
    # the counts would leave this band.
    hr = evaluate_sampled(Popularity().fit(split.train), split, k=10).hr.mean()
    assert 0.2 <= hr <= 0.34, hr


def test_score_candidates_matches_score(fitted: tuple[str, Model], split: Split) -> None:
    _, m = fitted
    users = np.array([1, 4, 9])
    cand = np.array([[0, 3, 5], [2, 2, 7], [9, 1, 0]])
    got = m.score_candidates(users, cand)
    want = m.score(np.repeat(users, 3), cand.reshape(-1)).reshape(3, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_one_size_vocabulary_with_the_papers_accounting() -> None:
    # Rendle et al. (2020) count numbers per vector: MF's bias is one of its d, an MLP of
    # factor k has embeddings of 2k and NeuMF adds a GMF branch of k.
    assert MatrixFactorization(embedding_dim=64).size == 64
    assert MatrixFactorization(embedding_dim=64).n_factors == 63
    assert IALS(embedding_dim=64).size == 64
    assert GMF(factor=64).size == 64
    assert MLP(factor=64).size == 128 and MLP(factor=8, layers=[64, 16, 8]).size == 32
    assert NeuMF(factor=64).size == 192
    assert Popularity().size is None
    from dotrec.tune.spaces import width_for_size

    for name, model in (("mf", MatrixFactorization), ("gmf", GMF), ("mlp", MLP), ("neumf", NeuMF)):
        width = width_for_size(name, 192)
        assert model(**{model.size_param: width}).size == 192  # type: ignore[misc]

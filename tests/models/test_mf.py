"""MatrixFactorization: SGD semantics, determinism, and a pinned band on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dotrec.data.interactions import Interactions
from dotrec.data.registry import load_dataset
from dotrec.errors import ConfigError
from dotrec.eval.protocols import evaluate
from dotrec.models import MatrixFactorization
from tests.conftest import planted_split


def test_one_sgd_step_matches_hand_computation() -> None:
    # One positive, no negatives, one epoch: exactly one SGD step from the initial factors.
    d = Interactions.from_indices(np.array([0]), np.array([1]), n_users=1, n_items=2)
    m = MatrixFactorization(
        embedding_dim=3,
        epochs=0,
        learning_rate=0.1,
        regularization=0.01,
        n_negatives=0,
        stddev=0.5,
        seed=7,
        threads=1,
    )
    m.fit(d)
    p, q = m.user_factors[0].astype(np.float64), m.item_factors[1].astype(np.float64)
    m._train_epochs(d, 1, None)  # one epoch from the initial state
    s = p @ q
    g = 1.0 - 1.0 / (1.0 + np.exp(-s))
    np.testing.assert_allclose(m.user_factors[0], p + 0.1 * (g * q - 0.01 * p), rtol=1e-5)
    np.testing.assert_allclose(m.item_factors[1], q + 0.1 * (g * p - 0.01 * q), rtol=1e-5)
    np.testing.assert_allclose(
        [m.user_bias[0], m.item_bias[1], m.global_bias], [0.1 * g] * 3, rtol=1e-5
    )
    assert m.item_bias[0] == 0.0  # untouched item: no update, no regularization step


def _params(m: MatrixFactorization) -> list[np.ndarray]:
    return [
        m.user_factors,
        m.item_factors,
        m.user_bias,
        m.item_bias,
        np.array([m.global_bias, m.last_loss]),
    ]


def test_threads_1_is_bit_reproducible_and_training_resumes_identically() -> None:
    split = planted_split()
    kw = dict(embedding_dim=8, epochs=6, learning_rate=0.05, n_negatives=3, seed=5, threads=1)
    a = MatrixFactorization(**kw).fit(split.train)
    b = MatrixFactorization(**kw).fit(split.train)
    for x, y in zip(_params(a), _params(b)):
        np.testing.assert_array_equal(x, y)
    # 3 epochs, then 3 more, equals 6 straight: epoch e draws from a stream keyed by (seed, e)
    c = MatrixFactorization(**{**kw, "epochs": 3}).fit(split.train)
    c._train_epochs(split.train, 6, None)
    for x, y in zip(_params(a), _params(c)):
        np.testing.assert_array_equal(x, y)


def test_two_threads_keep_the_global_bias_of_one() -> None:
    # Per-thread copies of the global bias are averaged after each epoch; summing their changes
    # instead would make it overshoot and oscillate from epoch to epoch.
    split = planted_split()
    kw = dict(embedding_dim=8, learning_rate=0.05, n_negatives=4, seed=0)
    for epochs in (1, 2, 5):
        one = MatrixFactorization(**kw, epochs=epochs, threads=1).fit(split.train)
        two = MatrixFactorization(**kw, epochs=epochs, threads=2).fit(split.train)
        assert abs(two.global_bias - one.global_bias) < 0.25, (
            epochs,
            one.global_bias,
            two.global_bias,
        )
        assert abs(two.last_loss - one.last_loss) < 0.05


def test_two_threads_learn_too() -> None:
    split = planted_split()
    m = MatrixFactorization(
        embedding_dim=8, epochs=30, learning_rate=0.05, n_negatives=4, seed=0, threads=2
    ).fit(split.train)
    assert evaluate(m, split, protocol="sampled")["sampled"].hr.mean() >= 0.9


@pytest.mark.parametrize(
    "kw",
    [
        {"embedding_dim": 0},
        {"learning_rate": 0.0},
        {"regularization": -1.0},
        {"threads": 0},
        {"epochs": 2.5},
    ],
)
def test_bad_hyperparameters(kw: dict) -> None:
    with pytest.raises(ConfigError):
        MatrixFactorization(**kw)


@pytest.mark.realdata
def test_band_on_ml_1m_u3k(data_dir: Path) -> None:
    """A short run on the 2,999-user NCF subset. Measured (embedding_dim 32 = 31 factors and
    the bias), seeds 0 / 1 / 2: sampled HR@10 0.663 / 0.659 / 0.665, NDCG@10 0.391 / 0.390 /
    0.390, full HR@10 0.075 / 0.073 / 0.076; Popularity: sampled 0.469, full 0.042."""
    split = load_dataset("ml-1m-u3k", data_dir)
    m = MatrixFactorization(
        embedding_dim=32,
        epochs=16,
        learning_rate=0.01,
        regularization=0.005,
        n_negatives=8,
        stddev=0.1,
        seed=0,
        threads=1,
    )
    res = evaluate(m.fit(split.train), split, protocol="both")
    s, f = res["sampled"].summary(), res["full"].summary()
    assert 0.645 <= s["hr@10"] <= 0.685, s
    assert 0.375 <= s["ndcg@10"] <= 0.405, s
    assert 0.065 <= f["hr@10"] <= 0.085, f


def test_divergence_is_a_clear_error() -> None:
    from tests.conftest import planted_split

    with pytest.raises(ConfigError, match="diverged"):
        MatrixFactorization(embedding_dim=8, epochs=5, learning_rate=50.0, threads=1).fit(
            planted_split().train
        )


def test_unfitted_model_is_a_dotrec_error() -> None:
    from dotrec.errors import DotrecError, NotFittedError

    with pytest.raises(NotFittedError, match="not fitted") as e:
        MatrixFactorization().score([0], [0])
    assert isinstance(e.value, DotrecError)  # the CLI prints it as one line


def test_embedding_dim_counts_the_bias_as_the_paper_does(tmp_path: Path) -> None:
    # Rendle et al.'s reference builds MFModel(embedding_dim - 1): the item bias is one of the
    # d numbers per item vector. d = 1 leaves only the biases (a popularity-like model).
    split = planted_split()
    m = MatrixFactorization(embedding_dim=5, epochs=1, threads=1).fit(split.train)
    assert m.n_factors == 4
    assert m.user_factors.shape == (split.train.n_users, 4)
    assert m.item_factors.shape == (split.train.n_items, 4)
    only_bias = MatrixFactorization(embedding_dim=1, epochs=2, threads=1).fit(split.train)
    assert only_bias.item_factors.shape == (split.train.n_items, 0)
    assert np.isfinite(only_bias.score_all(np.arange(3))).all()
    # An artifact whose factor width follows the old accounting (d columns) is refused.
    m.save(tmp_path / "m")
    wide = MatrixFactorization(embedding_dim=4, epochs=1, threads=1).fit(split.train)
    wide._arrays = m._arrays  # type: ignore[method-assign]
    wide.save(tmp_path / "old")
    from dotrec.errors import ArtifactError

    with pytest.raises(ArtifactError, match="bias counts as one"):
        MatrixFactorization.load(tmp_path / "old")
    assert MatrixFactorization.load(tmp_path / "m").n_factors == 4

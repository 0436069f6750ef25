"""The MLP trainer: architecture, determinism, that it learns, and device checks."""

from __future__ import annotations

import pytest

from tests.conftest import require

torch = require("torch")

from dotrec._torch import check_device, resolve_device  # noqa: E402
from dotrec.approx.data import make_dataset, rmse  # noqa: E402
from dotrec.approx.mlp import hidden_sizes, train_mlp  # noqa: E402
from dotrec.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return make_dataset(4, 400, seed=0, n_fresh=2000)


def test_hidden_sizes_follow_the_paper() -> None:
    assert hidden_sizes(16, 1) == [32, 16, 8]
    assert hidden_sizes(64, 4) == [512, 256, 128]
    assert hidden_sizes(1, 1) == [2, 1, 1]
    with pytest.raises(ConfigError):
        hidden_sizes(16, 0)


def test_same_seed_identical_other_seed_different(data) -> None:
    state = torch.get_rng_state()
    a = train_mlp(data, 1, seed=0, epochs=1, threads=1)
    b = train_mlp(data, 1, seed=0, epochs=1, threads=1)
    c = train_mlp(data, 1, seed=1, epochs=1, threads=1)
    assert torch.equal(state, torch.get_rng_state())  # the global torch RNG is never used
    assert (a.train_rmse, a.test_rmse, a.fresh_rmse) == (b.train_rmse, b.test_rmse, b.fresh_rmse)
    assert a.test_rmse != c.test_rmse


def test_mlp_learns_beyond_the_zero_predictor(data) -> None:
    import numpy as np

    fit = train_mlp(data, 2, seed=0, epochs=6, threads=1)
    zero = rmse(np.zeros_like(data.test_labels), data.test_labels)
    dot = rmse(data.dot_predictions("test"), data.test_labels)
    # d = 4 is easy: the MLP closes most of the gap between the zero predictor and the floor.
    assert dot < fit.test_rmse < dot + 0.5 * (zero - dot)
    assert fit.fresh_rmse < zero and fit.seconds > 0 and fit.cpu_seconds > 0


def test_bad_device_and_options_are_config_errors(data) -> None:
    with pytest.raises(ConfigError, match="device must be"):
        check_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")
        assert resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError):
        train_mlp(data, 1, seed=0, epochs=0)
    with pytest.raises(ConfigError):
        train_mlp(data, 1, seed=0, threads=0)

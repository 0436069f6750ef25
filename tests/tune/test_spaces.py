"""Search spaces, the paper's size accounting, the published first trial, the docs."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from dotrec.errors import ConfigError
from dotrec.models import MODELS, NeuMF
from dotrec.tune.spaces import (
    REFERENCE,
    SPACES,
    Choice,
    Float,
    Int,
    counted_size,
    fit_config,
    reference,
    space,
    suggest,
    width_for_size,
)
from tests.tune.conftest import planted

DOCS = Path(__file__).resolve().parents[2] / "docs" / "tuning.md"


def test_sizes_follow_the_paper_accounting() -> None:
    assert [width_for_size(m, 192) for m in ("mf", "ials", "gmf", "mlp", "neumf")] == [
        192,
        192,
        192,
        96,
        64,
    ]
    assert (width_for_size("neumf", 64), counted_size("neumf", 64)) == (21, 63)
    assert width_for_size("neumf", 1) == 1
    with pytest.raises(ConfigError):
        width_for_size("popularity", 8)


def test_epoch_scale_keeps_at_least_one_epoch() -> None:
    mf = space("mf", 0.25)["epochs"]
    assert isinstance(mf, Int) and (mf.low, mf.high) == (2, 64)
    ials = space("ials", 0.01)["epochs"]
    assert isinstance(ials, Int) and (ials.low, ials.high) == (1, 1)
    with pytest.raises(ConfigError):
        space("mf", 0.0)


@pytest.mark.parametrize("model", list(SPACES))
def test_reference_lies_in_the_space_and_builds(model: str) -> None:
    assert model in MODELS and set(REFERENCE[model]) == set(SPACES[model])
    for scale in (1.0, 0.1):
        ref = reference(model, scale)
        for name, p in space(model, scale).items():
            v = ref[name]
            if isinstance(p, Choice):
                assert v in p.choices
            else:
                assert isinstance(p, Float | Int) and p.low <= v <= p.high


@pytest.mark.parametrize("model", list(SPACES))
def test_sampled_configurations_train(model: str) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    params = suggest(trial, model, 0.05)
    assert set(params) == set(SPACES[model]) == set(trial.params)
    fitted = fit_config(model, 6, params, planted().train, seed=0, threads=1)
    assert fitted.epochs_done == params["epochs"]
    if model == "neumf":
        assert isinstance(fitted, NeuMF) and fitted.pretrain


def test_docs_list_every_searched_parameter() -> None:
    rows = [r for r in DOCS.read_text().splitlines() if r.startswith("| ")]
    for model, params in SPACES.items():
        for name in params:
            assert any(model in r.split("|")[1] and f"| {name} |" in r for r in rows), (
                f"docs/tuning.md does not list {model}.{name}"
            )

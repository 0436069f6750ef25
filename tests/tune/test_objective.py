"""The objective sees only the tuning holdout; tuning is deterministic and resumable."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna
import pytest

from dotrec.data.splits import Split
from dotrec.errors import ConfigError
from dotrec.eval.protocols import evaluate_sampled
from dotrec.models import MatrixFactorization
from dotrec.tune import HoldoutObjective, TuneResult, open_storage, open_study, run_trials, tune
from dotrec.tune.runner import TuneSettings
from tests.tune.conftest import planted, poisoned, storage_url

TINY = dict(size=8, k=10, threads=1, epoch_scale=0.1, pruner="none", holdout_negatives=20)


def trial_values(url: str, name: str) -> list[tuple[int, str, float | None, dict]]:
    study = optuna.load_study(study_name=name, storage=url)
    return [(t.number, t.state.name, t.value, t.params) for t in study.get_trials()]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TuneResult, str]:
    url = storage_url(tmp_path_factory.mktemp("clean"))
    result = tune(planted(), "mf", n_trials=4, storage=url, **TINY)
    assert result.best_value is not None and result.complete == 4
    return result, url


@pytest.mark.parametrize("how", ["raise", "garbage"])
def test_tuning_never_reads_the_test_split(
    clean_run: tuple[TuneResult, str], split: Split, tmp_path: Path, how: str
) -> None:
    clean, clean_url = clean_run
    dirty = tune(poisoned(split, how), "mf", n_trials=4, storage=storage_url(tmp_path), **TINY)
    assert (dirty.best_value, dirty.best_params, dirty.best_trial) == (
        clean.best_value,
        clean.best_params,
        clean.best_trial,
    )
    assert trial_values(storage_url(tmp_path), dirty.study_name) == trial_values(
        clean_url, clean.study_name
    )


def test_objective_scores_the_holdout_sampled_protocol(split: Split) -> None:
    holdout = split.holdout(0, 20)
    model = MatrixFactorization(embedding_dim=8, epochs=3, seed=0).fit(holdout.train)
    objective = HoldoutObjective("mf", 8, holdout, metric="hr", k=5)
    assert objective.score(model) == evaluate_sampled(model, holdout, k=5).hr.mean()


def test_rerun_resumes_and_extends_without_repeating(split: Split, tmp_path: Path) -> None:
    url = storage_url(tmp_path)
    first = tune(split, "mf", n_trials=2, storage=url, **TINY)
    before = trial_values(url, first.study_name)
    again = tune(split, "mf", n_trials=2, storage=url, **TINY)
    assert trial_values(url, first.study_name) == before  # a finished study is reused
    more = tune(split, "mf", n_trials=5, storage=url, **TINY)
    after = trial_values(url, more.study_name)
    assert after[:2] == before and len(after) == 5 and more.finished == 5
    params = [tuple(sorted(p.items())) for *_, p in after]
    assert len(set(params)) == 5, "a resumed study drew an earlier configuration again"
    assert again.best_value == first.best_value


def test_other_settings_are_refused(split: Split, tmp_path: Path) -> None:
    url = storage_url(tmp_path)
    tune(split, "mf", n_trials=1, storage=url, **TINY)
    with pytest.raises(ConfigError, match="other settings.*epoch_scale"):
        tune(split, "mf", n_trials=1, storage=url, **{**TINY, "epoch_scale": 0.2})


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_waits_for_running_trials_of_other_workers_instead_of_overshooting(
    split: Split, tmp_path: Path
) -> None:
    url = storage_url(tmp_path)
    settings = TuneSettings(
        model="mf", size=8, dataset=split.name, train_fingerprint=split.train.fingerprint()
    )
    study = open_study(open_storage(url, heartbeat=1), "s", settings)
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    other = study.ask()  # another worker's trial, still running

    def finish_other() -> None:
        time.sleep(1.5)
        study.tell(other, 0.25)

    t = threading.Thread(target=finish_other)
    t.start()
    ran: list[int] = []
    run_trials(study, lambda trial: ran.append(trial.number) or 0.0, 2)
    t.join()
    assert ran == [] and len(study.get_trials()) == 2


def test_timeout_stops_between_trials_and_a_rerun_goes_on(split: Split, tmp_path: Path) -> None:
    url = storage_url(tmp_path)
    stopped = tune(split, "mf", n_trials=3, storage=url, timeout=1e-9, **TINY)
    assert stopped.timed_out and not stopped.done and stopped.finished == 0
    assert tune(split, "mf", n_trials=3, storage=url, **TINY).finished == 3


@pytest.mark.parametrize(
    "bad", [dict(metric="auc"), dict(pruner="sometimes"), dict(timeout=-1.0), dict(n_trials=0)]
)
def test_bad_settings_are_config_errors(split: Split, tmp_path: Path, bad: dict) -> None:
    kwargs = {**TINY, "n_trials": 1, **bad}
    with pytest.raises(ConfigError):
        tune(split, "mf", storage=storage_url(tmp_path), **kwargs)


def test_early_stopping_ends_trials_at_their_best_epoch(tmp_path: Path) -> None:
    # MF's space at epoch_scale 1 samples 10-256 epochs; patience 2 stops well before that on
    # this tiny data, and the result's epochs are the best trial's best epoch.
    url = storage_url(tmp_path)
    settings = {**TINY, "epoch_scale": 1.0}
    result = tune(planted(), "mf", n_trials=2, storage=url, early_stopping=2, **settings)
    study = optuna.load_study(study_name=result.study_name, storage=url)
    for t in study.get_trials():
        steps = t.intermediate_values
        best = max(steps, key=lambda e: (steps[e], -e))
        assert t.user_attrs["best_epoch"] == best and t.value == steps[best]
        assert max(steps) == best + 2 < t.params["epochs"]  # stopped 2 epochs after the best
    assert result.best_params["epochs"] == result.best_attrs["best_epoch"]
    assert result.best_attrs["sampled_epochs"] > result.best_params["epochs"]
    # another patience is another study
    with pytest.raises(ConfigError, match="early_stopping"):
        tune(planted(), "mf", n_trials=2, storage=url, early_stopping=3, **settings)


def test_trials_record_the_hardware_they_ran_on(clean_run: tuple[TuneResult, str]) -> None:
    from optuna.trial import create_trial

    from dotrec.machine import machine_label
    from dotrec.tune.runner import machine_split, trial_machine
    from dotrec.tune.spaces import train_device

    result, url = clean_run
    here = machine_label()
    trials = optuna.load_study(study_name=result.study_name, storage=url).get_trials()
    assert [t.user_attrs["machine"] for t in trials] == [here] * 4
    assert list(result.machines) == [here]
    assert result.machines[here] == pytest.approx(result.trial_seconds)
    # Trials stored before the hardware was recorded are labelled by their host.
    old = create_trial(value=0.5, user_attrs={"worker": "box-7:123"})
    older = create_trial(value=0.5)
    assert trial_machine(old) == "host box-7" and trial_machine(older) == "not recorded"
    assert list(machine_split([*trials, old, older])) == [here, "host box-7", "not recorded"]
    assert train_device("mf", {"device": "cuda"}) == "cpu"  # only torch models use a GPU
    assert train_device("gmf") == "cpu" and train_device("gmf", {"device": "cpu"}) == "cpu"

"""A trial killed mid-run resumes from its checkpoint and ends as an uninterrupted one."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from dotrec.models import Model
from dotrec.tune import TuneProgress, tune
from dotrec.tune.checkpoint import STATE_FILE, TrialCheckpoint, study_folder
from dotrec.tune.spaces import fit_config, phase_options, reference
from tests.conftest import planted_split
from tests.tune.conftest import planted, storage_url


class Killed(BaseException):
    """Stands in for SIGKILL: Optuna does not catch it, so the trial stays RUNNING."""


TINY = dict(size=8, k=10, threads=1, pruner="none", holdout_negatives=20)


def killer(trial: int, epoch: int, seen: list[tuple[int, str, int]]) -> Any:
    """An ``on_progress`` that records every epoch and 'kills' ``trial`` at ``epoch``."""

    def on_progress(p: TuneProgress) -> None:
        if p.event is None:
            return
        e = p.event
        seen.append((e.trial, e.phase, e.epoch))
        if (e.trial, e.epoch) == (trial, epoch):
            raise Killed

    return on_progress


def test_a_killed_trial_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    split = planted()
    run = dict(model="mf", n_trials=2, epoch_scale=0.1, **TINY)
    reference_url = storage_url(tmp_path, "reference.db")
    tune(split, storage=reference_url, **run)  # type: ignore[arg-type]
    ref = optuna.load_study(study_name="planted:mf:d8", storage=reference_url).get_trials()

    url, root = storage_url(tmp_path), tmp_path / "ckpt"
    seen: list[tuple[int, str, int]] = []
    with pytest.raises(Killed):
        tune(  # type: ignore[arg-type]
            split,
            storage=url,
            heartbeat=1,
            checkpoints=root,
            checkpoint_every=0,
            on_progress=killer(1, 4, seen),
            **run,
        )
    folder = study_folder(root, "planted:mf:d8")
    state = json.loads((folder / "trial-1" / STATE_FILE).read_text())
    assert state["saved"] == {"mf": 3}  # killed in epoch 4, before its save
    assert sorted(map(int, state["values"])) == [1, 2, 3]
    assert not (folder / "trial-0").exists()  # a finished trial removes its checkpoint
    (folder / "trial-7").mkdir()  # left by a trial that no retry will resume
    time.sleep(2.5)  # the killed trial's heartbeat goes stale

    seen.clear()
    result = tune(
        split, storage=url, heartbeat=1, checkpoints=root, on_progress=killer(-1, 0, seen), **run
    )  # type: ignore[arg-type]
    trials = optuna.load_study(study_name="planted:mf:d8", storage=url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    retry = trials[2]
    assert retry.system_attrs["failed_trial"] == 1 and retry.params == ref[1].params
    assert retry.user_attrs["resumed_from"] == {"mf": 3}
    # Training went on from epoch 4, and (one thread: bit-reproducible) ended as if never
    # stopped: the same holdout value after every epoch, the same trial value.
    assert [e for _, _, e in seen] == list(range(4, ref[1].params["epochs"] + 1))
    assert retry.intermediate_values == ref[1].intermediate_values
    assert retry.value == ref[1].value and result.best_value == max(t.value for t in ref)
    assert not any(folder.iterdir())  # the retry's checkpoint and the orphan are gone


@pytest.mark.parametrize(
    ("phase", "optimizer"), [("mlp", "adam"), ("mlp", "lazy_adam"), ("neumf", "adam")]
)
def test_neumf_resumes_in_the_phase_it_was_stopped(
    tmp_path: Path, phase: str, optimizer: str
) -> None:
    pytest.importorskip("torch")
    train = planted_split(n_users=60, n_items=30, per_user=6, n_negatives=10).train
    params = {**reference("neumf"), "pretrain_epochs": 3, "epochs": 3}
    opts = {"optimizer": optimizer}
    kw: dict[str, Any] = dict(seed=0, threads=1, torch_options=opts)
    whole = fit_config("neumf", 24, params, train, **kw)
    phases = phase_options("neumf", 24, params, 0, 1, opts)
    assert list(phases) == ["gmf", "mlp", "neumf"]
    checkpoint = TrialCheckpoint(tmp_path / "trial-0", params, phases, every=0)

    def save_then_die(name: str, epoch: int, epochs: int, m: Model) -> None:
        if (name, epoch) == (phase, 2):
            raise Killed
        checkpoint.epoch_done(name, epoch, epochs, m)

    with pytest.raises(Killed):
        fit_config("neumf", 24, params, train, on_epoch=save_then_die, **kw)
    again = TrialCheckpoint(tmp_path / "trial-0", params, phases, every=0)
    start = again.load(train)
    done = {"mlp": {"gmf": 3, "mlp": 1}, "neumf": {"gmf": 3, "mlp": 3, "neumf": 1}}[phase]
    assert again.saved == done and set(start) == set(done)
    events: list[tuple[str, int]] = []
    resumed = fit_config(
        "neumf",
        24,
        params,
        train,
        on_epoch=lambda n, e, _, m: events.append((n, e)),
        start=start,
        **kw,
    )
    # Nothing before the stop is trained again.
    assert events[0] == (phase, 2) and all(n != "gmf" for n, _ in events)
    # Adam's moments were saved with the MLP: the resumed fit is bit-identical.
    u = np.repeat(np.arange(train.n_users), train.n_items)
    i = np.tile(np.arange(train.n_items), train.n_users)
    assert np.array_equal(resumed.score(u, i), whole.score(u, i))


def test_a_checkpoint_of_other_settings_is_discarded(tmp_path: Path) -> None:
    train = planted().train
    params = {**reference("mf"), "epochs": 3}
    phases = phase_options("mf", 8, params, 0, 1)
    ck = TrialCheckpoint(tmp_path / "trial-0", params, phases, every=0)

    def save_two_epochs() -> None:
        fit_config("mf", 8, params, train, seed=0, threads=1, on_epoch=ck.epoch_done)

    save_two_epochs()
    same = TrialCheckpoint(tmp_path / "trial-0", params, phases)
    assert list(same.load(train)) == ["mf"] and same.saved == {"mf": 2}  # epochs 1, 2 saved
    assert sorted(p.name for p in (tmp_path / "trial-0").iterdir()) == ["mf-2", STATE_FILE]
    # Killed after writing the next model but before state.json named it: epoch 2 still reads.
    third = fit_config("mf", 8, params, train, seed=0, threads=1)
    third.save(tmp_path / "trial-0" / "mf-3")
    assert same.load(train)["mf"].epochs_done == 2
    other_params = TrialCheckpoint(tmp_path / "trial-0", {**params, "epochs": 4}, phases)
    assert other_params.load(train) == {} and not (tmp_path / "trial-0").exists()

    save_two_epochs()
    two_threads = phase_options("mf", 8, params, 0, 2)
    assert TrialCheckpoint(tmp_path / "trial-0", params, two_threads).load(train) == {}

    save_two_epochs()
    other_data = planted_split(n_users=70, n_items=40, per_user=8, n_negatives=20).train
    assert TrialCheckpoint(tmp_path / "trial-0", params, phases).load(other_data) == {}

    save_two_epochs()
    (tmp_path / "trial-0" / STATE_FILE).write_text("{not json")
    assert TrialCheckpoint(tmp_path / "trial-0", params, phases).load(train) == {}

"""`dotrec tune` killed with SIGKILL in the middle of a trial resumes with nothing lost."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.tune.cli_helpers import finished, start_dotrec, trials

N = 5


def study_exists(db: Path, name: str) -> bool:
    """True once the child process has created the schema and the study."""
    try:
        with sqlite3.connect(db) as con:
            return bool(
                con.execute("SELECT 1 FROM studies WHERE study_name = ?", (name,)).fetchall()
            )
    except sqlite3.OperationalError:  # no file or no tables yet
        return False


@pytest.mark.slow
def test_resume_after_sigkill_mid_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = (
        "tune",
        "mf",
        "--dataset",
        "synthetic",
        "--dim",
        "8",
        "--trials",
        str(N),
        "--epoch-scale",
        "0.3",
        "--threads",
        "1",
        "--pruner",
        "none",
        "--heartbeat",
        "1",
        "--out",
        str(tmp_path),
        "--study",
        "kill-test",
        "--checkpoint-every",
        "0",
    )
    proc = start_dotrec(*args)
    storage: optuna.storages.RDBStorage | None = None
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if storage is None:
            if not study_exists(tmp_path / "optuna.db", "kill-test"):
                continue
            storage = optuna.storages.RDBStorage(url)
        ts = trials(storage, "kill-test")
        running = [
            t
            for t in ts
            if t.state == TrialState.RUNNING
            # Two epochs reported: epoch 1's checkpoint is surely written (an epoch is reported
            # before its checkpoint, so a kill right after the first report leaves none).
            and len(t.intermediate_values) >= 2
            and len(finished(ts)) >= 2
            and t.params["epochs"] - max(t.intermediate_values) >= 3
        ]
        if running:
            proc.kill()  # SIGKILL: no handler runs, the trial stays RUNNING in the storage
            proc.wait()
            victim = running[0]
    assert victim is not None, f"no trial to interrupt; dotrec said: {proc.communicate()}"
    assert storage is not None
    before = {
        t.number: (t.state, t.value, t.params) for t in finished(trials(storage, "kill-test"))
    }
    assert len(before) >= 2

    proc = start_dotrec(*args, "--json")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    result = json.loads(out)
    ts = trials(storage, "kill-test")
    done = finished(ts)
    assert len(done) == N and result["complete"] + result["pruned"] == N
    assert {t.number: (t.state, t.value, t.params) for t in done if t.number in before} == before
    states = {t.number: t.state for t in ts}
    assert states[victim.number] == TrialState.FAIL  # found stale by its heartbeat
    retried = [t for t in done if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retried) == 1 and retried[0].params == victim.params
    assert not [t for t in ts if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # The killed trial's machine time is its time to its latest epoch, not to the moment the
    # next run found it stale.
    dead = next(t for t in ts if t.number == victim.number)
    # The retry resumed from the victim's checkpoint (written after every epoch here; one being
    # written when the kill came is never read half-done), with the values reported before it.
    last = max(dead.intermediate_values)
    saved = retried[0].user_attrs["resumed_from"]["mf"]
    assert last - 1 <= saved <= last
    for step in range(1, saved + 1):
        assert retried[0].intermediate_values[step] == dead.intermediate_values[step]
    assert retried[0].intermediate_values.keys() == set(range(1, victim.params["epochs"] + 1))
    assert not list((tmp_path / "trial-checkpoints").rglob("trial-*"))  # all finished
    assert dead.datetime_complete is not None and dead.datetime_start is not None
    elapsed = dead.user_attrs["elapsed_seconds"]
    assert 0 < elapsed < (dead.datetime_complete - dead.datetime_start).total_seconds()
    spent = sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in done
        if t.datetime_complete is not None and t.datetime_start is not None
    )
    assert result["trial_seconds"] == pytest.approx(spent + elapsed)

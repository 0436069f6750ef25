"""Running ``dotrec`` in a subprocess and reading a study's trials, for the worker tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

REPO = Path(__file__).resolve().parents[2]


def start_dotrec(*args: str) -> subprocess.Popen[str]:
    """``dotrec ARGS`` as a child process (its output captured)."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-c", "from dotrec.cli import main; main()", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def trials(storage: optuna.storages.BaseStorage, name: str) -> list[FrozenTrial]:
    """The study's trials, or [] while it does not exist yet."""
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    except KeyError:
        return []


def finished(ts: list[FrozenTrial]) -> list[FrozenTrial]:
    return [
        t
        for t in ts
        if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ]

"""Checkpoints of running tuning trials: a study stopped mid-trial loses minutes, not the trial.

A long study runs in parts (one per session of a shared machine), and each stop kills the
trial that was running. Optuna then fails it as stale and queues a retry with the same
parameters (:mod:`dotrec.tune.runner`), which would train it again from its first epoch: up to
an hour of an MLP trial on ml-1m at the larger sizes. With a checkpoint folder, a trial saves
its model (weights, and Adam's moments for the torch models: the exact resume state of
:meth:`dotrec.models.base.Model.fit`) at most every ``every`` seconds and at the end of each
NeuMF pretraining phase, with the holdout values it has reported; the retry loads them,
reports the same values again, and trains on from the saved epoch. A study's final fits (the
winner retrained with each seed) keep checkpoints the same way, as ``final-seedS`` beside the
trials' folders, with the seconds the fit had run (:attr:`TrialCheckpoint.elapsed`): an NCF
final fit at the larger sizes takes longer than what is left of many parts of the run.

Layout: ``ROOT/STUDY/trial-N/`` (``N`` the number of the first trial of a retry chain; the
key travels to the retry in the ``checkpoint`` user attribute, which Optuna copies),
holding one model artifact per phase trained so far (``gmf-E``, ``mlp-E``, then the trial's
own model, ``E`` the epoch saved) and ``state.json`` (the parameters, each saved phase's epoch
and the values), written after the model it names and before the older model is removed, so a
process killed at any moment leaves a checkpoint that reads whole. A finished trial removes
its folder; :func:`sweep` removes the folders no running or queued trial will read.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dotrec.artifacts import atomic_write_bytes
from dotrec.data.interactions import Interactions
from dotrec.errors import ArtifactError
from dotrec.models import MODELS, Model, load_model

#: The folder of trial checkpoints under the output folder of ``dotrec tune`` and ``study``.
CHECKPOINTS_DIR = "trial-checkpoints"
#: Trial user attribute: the checkpoint folder's name (kept by the retries of a trial).
CHECKPOINT_ATTR = "checkpoint"
STATE_FILE = "state.json"
#: Default seconds between two checkpoints of a trial.
DEFAULT_EVERY = 600.0


def study_folder(root: Path, study_name: str) -> Path:
    """The checkpoints of one study under ``root`` (the name made safe for a path)."""
    return root / re.sub(r"[^\w.-]", "_", study_name)


class TrialCheckpoint:
    """The checkpoint of one trial (see the module doc).

    ``expected`` maps each phase of the trial's pipeline (``gmf``, ``mlp``, ``neumf`` for
    NeuMF; the model's name otherwise) to the constructor options it trains with: a saved
    phase whose configuration differs (other threads, another dotrec) is not resumed.
    """

    def __init__(
        self,
        folder: Path,
        params: Mapping[str, Any],
        expected: Mapping[str, Mapping[str, Any]],
        every: float = DEFAULT_EVERY,
    ) -> None:
        self.folder = folder
        self.params = dict(params)
        self.expected = {name: dict(opts) for name, opts in expected.items()}
        self.every = every
        self.saved: dict[str, int] = {}
        self.values: dict[int, float] = {}
        #: Seconds of training before this run (loaded) and up to the latest save (set by the
        #: caller before :meth:`epoch_done`): a resumed fit's time counts from its start.
        self.elapsed = 0.0
        self._last_save = time.monotonic()

    def load(self, train: Interactions) -> dict[str, Model]:
        """The saved phase models to resume from (empty: none usable), and their values in
        :attr:`values`. A checkpoint of other parameters, configurations or training data, or
        one that cannot be read, is discarded (the trial then starts afresh)."""
        state_path = self.folder / STATE_FILE
        if not state_path.exists():
            return {}
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
            if state["params"] != json.loads(json.dumps(self.params)):
                return self._discard()
            models: dict[str, Model] = {}
            for name, epoch in state["saved"].items():
                m = load_model(self._path(name, int(epoch)))
                wanted = MODELS[name](**self.expected[name]).config()
                if (
                    m.name != name
                    or m.config() != wanted
                    or m.epochs_done != int(epoch)
                    or m.train_fingerprint != train.fingerprint()
                ):
                    return self._discard()
                models[name] = m
        except (OSError, ValueError, KeyError, TypeError, ArtifactError):
            return self._discard()
        self.saved = {name: int(e) for name, e in state["saved"].items()}
        self.values = {int(step): float(v) for step, v in state["values"].items()}
        self.elapsed = float(state.get("elapsed", 0.0))
        return models

    def _path(self, phase: str, epoch: int) -> Path:
        return self.folder / f"{phase}-{epoch}"

    def _discard(self) -> dict[str, Model]:
        self.remove()
        return {}

    def record(self, step: int, value: float) -> None:
        """A holdout value the trial reported (replayed by a resume)."""
        self.values[step] = value

    def epoch_done(self, phase: str, epoch: int, epochs: int, model: Model) -> bool:
        """Save ``model`` (phase ``phase`` at ``epoch``) if ``every`` seconds have passed since
        the last save, or if it ends a pretraining phase; True if it was saved."""
        if epoch == epochs:
            if phase == list(self.expected)[-1]:
                return False  # the trial's last epoch: it is about to finish
        elif time.monotonic() - self._last_save < self.every:
            return False
        # A new folder per save, named in state.json only once whole, and the old one removed
        # after: a kill at any point leaves a state.json whose models all exist.
        model.save(self._path(phase, epoch))
        previous = self.saved.get(phase)
        self.saved[phase] = epoch
        state = {
            "params": self.params,
            "saved": self.saved,
            "values": {str(s): v for s, v in sorted(self.values.items())},
            "elapsed": self.elapsed,
        }
        atomic_write_bytes(self.folder / STATE_FILE, json.dumps(state, indent=1).encode())
        if previous is not None and previous != epoch:
            shutil.rmtree(self._path(phase, previous), ignore_errors=True)
        self._last_save = time.monotonic()
        return True

    def remove(self) -> None:
        """Delete the checkpoint (the trial has finished, or the checkpoint is unusable)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def saved_checkpoints(folder: Path) -> dict[str, dict[str, int]]:
    """The checkpoints in ``folder`` (trials' and final fits'): each key's saved phases and
    their epochs (a checkpoint that cannot be read is left out; the next run discards it)."""
    found: dict[str, dict[str, int]] = {}
    for state in sorted(folder.glob(f"*/{STATE_FILE}")):
        try:
            saved = json.loads(state.read_text(encoding="utf-8"))["saved"]
            found[state.parent.name] = {str(k): int(v) for k, v in saved.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return found


def sweep(folder: Path, keep: Iterable[str]) -> list[str]:
    """Remove the trial checkpoints in ``folder`` except those named in ``keep`` (the keys
    of running and queued trials); returns the names removed."""
    if not folder.is_dir():
        return []
    wanted = set(keep)
    removed = []
    for path in sorted(folder.iterdir()):
        if path.is_dir() and path.name.startswith("trial-") and path.name not in wanted:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed

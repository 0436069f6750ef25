"""The tuning objective: holdout quality of one sampled configuration.

:class:`HoldoutObjective` is built from the tuning holdout alone (``split.holdout(seed)``: the
leave-one-out procedure applied to the training interactions), so the test items and test
negatives never reach it. Each trial samples a configuration, fits the model on the holdout's
training part, and after every epoch scores the holdout under the split's protocol
(:mod:`dotrec.eval.holdout`: sampled for leave-one-out, full ranking for splits given by
files; NDCG@10 by
default), reports it to Optuna and stops early when the pruner says so. The trial's value is
the metric after the last epoch; with ``early_stopping=N`` (:class:`dotrec.train.EarlyStopping`)
a trial instead stops N epochs after its best epoch, its value is the best epoch's, and that
epoch is recorded as the trial's ``best_epoch`` (the epochs a refit should train).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from dotrec.data.splits import FileSplit, Split
from dotrec.errors import ConfigError, DotrecError
from dotrec.eval.holdout import check_metric, holdout_score
from dotrec.machine import machine_label
from dotrec.models import Model
from dotrec.train.early_stopping import EarlyStopping
from dotrec.tune.checkpoint import CHECKPOINT_ATTR, DEFAULT_EVERY, TrialCheckpoint
from dotrec.tune.spaces import check_model, fit_config, phase_options, suggest, train_device

#: Trial user attribute: seconds from the trial's start to its latest finished epoch.
ELAPSED_ATTR = "elapsed_seconds"
#: Trial user attribute: the hardware the trial ran on (:func:`dotrec.machine.machine_label`).
MACHINE_ATTR = "machine"


@dataclass(frozen=True)
class EpochEvent:
    """One finished epoch inside a trial (for progress displays)."""

    trial: int
    phase: str
    epoch: int
    epochs: int
    value: float | None


def worker_id() -> str:
    """``host:pid`` of this process, recorded on every trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


class HoldoutObjective:
    """Optuna objective: fit ``model`` at embedding ``size`` and score it on ``holdout``.

    Parameters
    ----------
    model : str
        A model with a search space (:data:`dotrec.tune.spaces.SPACES`).
    size : int
        The embedding size of the study cell (paper accounting, see :mod:`dotrec.tune.spaces`).
    holdout : Split
        The tuning split; its test items are the training data's held-out interactions.
    metric : {"ndcg", "hr", "rr"}
        Per-user metric of the sampled protocol, averaged over holdout users.
    k : int
        Cut-off of ``metric``.
    seed, threads
        Passed to every model the trial fits.
    torch_options : mapping, optional
        ``optimizer``, ``precision`` and ``device`` for GMF, MLP and NeuMF.
    epoch_scale : float
        Multiplies the searched epoch ranges (a cheaper or longer search).
    on_epoch : callable, optional
        Receives an :class:`EpochEvent` after every epoch.
    early_stopping : int, optional
        Patience in epochs (see the module doc); None trains every sampled epoch.
    checkpoints : Path, optional
        Folder of this study's trial checkpoints (:mod:`dotrec.tune.checkpoint`): a trial
        saves its state there at most every ``checkpoint_every`` seconds, and a retry of a
        trial killed mid-run resumes from it. None: no checkpoints.
    """

    def __init__(
        self,
        model: str,
        size: int,
        holdout: Split | FileSplit,
        *,
        metric: str = "ndcg",
        k: int = 10,
        seed: int = 0,
        threads: int = 1,
        epoch_scale: float = 1.0,
        on_epoch: Callable[[EpochEvent], None] | None = None,
        torch_options: Mapping[str, Any] | None = None,
        early_stopping: int | None = None,
        checkpoints: Path | None = None,
        checkpoint_every: float = DEFAULT_EVERY,
    ) -> None:
        check_model(model)
        if early_stopping is not None:
            EarlyStopping(early_stopping)  # checks the patience now, not in the first trial
        check_metric(holdout, metric)
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        self.model = model
        self.size = size
        self.holdout = holdout
        self.metric = metric
        self.k = k
        self.seed = seed
        self.threads = threads
        self.torch_options = dict(torch_options or {})
        self.epoch_scale = epoch_scale
        self.on_epoch = on_epoch
        self.early_stopping = early_stopping
        self.machine = machine_label(train_device(model, self.torch_options))
        self.checkpoints = checkpoints
        self.checkpoint_every = checkpoint_every

    def score(self, model: Model) -> float:
        """Mean holdout ``metric@k`` of ``model`` under the split's protocol."""
        return holdout_score(model, self.holdout, self.metric, self.k)

    def _checkpoint(self, trial: optuna.Trial, params: dict[str, Any]) -> TrialCheckpoint | None:
        """This trial's checkpoint (a retry keeps the key of the trial it repeats)."""
        if self.checkpoints is None:
            return None
        key = trial.user_attrs.get(CHECKPOINT_ATTR) or f"trial-{trial.number}"
        trial.set_user_attr(CHECKPOINT_ATTR, key)
        phases = phase_options(
            self.model, self.size, params, self.seed, self.threads, self.torch_options
        )
        return TrialCheckpoint(self.checkpoints / key, params, phases, self.checkpoint_every)

    def __call__(self, trial: optuna.Trial) -> float:
        params = suggest(trial, self.model, self.epoch_scale)
        trial.set_user_attr("worker", worker_id())
        trial.set_user_attr(MACHINE_ATTR, self.machine)
        checkpoint = self._checkpoint(trial, params)
        start_models = {} if checkpoint is None else checkpoint.load(self.holdout.train)
        try:
            value = self._run(trial, params, checkpoint, start_models)
        except (optuna.TrialPruned, DotrecError):
            if checkpoint is not None:
                checkpoint.remove()
            raise
        if checkpoint is not None:
            checkpoint.remove()
        return value

    def _run(
        self,
        trial: optuna.Trial,
        params: dict[str, Any],
        checkpoint: TrialCheckpoint | None,
        start_models: dict[str, Model],
    ) -> float:
        last: list[float] = []
        stopper = None if self.early_stopping is None else EarlyStopping(self.early_stopping)
        if start_models:
            assert checkpoint is not None
            # The values the trial reported before it was stopped, reported again in order.
            for step, value in sorted(checkpoint.values.items()):
                trial.report(value, step)
                last[:] = [value]
                if stopper is not None:
                    stopper.update(step, value)
        if checkpoint is not None:
            trial.set_user_attr("resumed_from", dict(checkpoint.saved))
        # A retry copies the user attributes of the trial it repeats: its time starts at 0.
        trial.set_user_attr(ELAPSED_ATTR, 0.0)
        start = time.perf_counter()

        def on_epoch(phase: str, epoch: int, epochs: int, m: Model) -> None:
            # What a trial that dies later (killed, stale) has cost: its time to here.
            trial.set_user_attr(ELAPSED_ATTR, time.perf_counter() - start)
            value = None
            if phase == self.model:
                value = self.score(m)
                last[:] = [value]
                trial.report(value, epoch)
                if checkpoint is not None:
                    checkpoint.record(epoch, value)
            if self.on_epoch is not None:
                self.on_epoch(EpochEvent(trial.number, phase, epoch, epochs, value))
            if value is not None and trial.should_prune():
                raise optuna.TrialPruned(
                    f"pruned at epoch {epoch} of {epochs} ({self.metric}@{self.k} {value:.4f})"
                )
            if value is not None and stopper is not None and stopper.update(epoch, value):
                raise _Stopped
            if checkpoint is not None:
                checkpoint.epoch_done(phase, epoch, epochs, m)

        try:
            fit_config(
                self.model,
                self.size,
                params,
                self.holdout.train,
                seed=self.seed,
                threads=self.threads,
                on_epoch=on_epoch,
                torch_options=self.torch_options,
                start=start_models,
            )
        except _Stopped:
            pass
        trial.set_user_attr("fit_seconds", time.perf_counter() - start)
        assert last, "every search space trains at least one epoch"
        if stopper is None:
            return last[0]
        trial.set_user_attr("best_epoch", stopper.best_epoch)
        return stopper.best_value


class _Stopped(Exception):
    """Ends a trial's fit once early stopping says so (not a failure)."""

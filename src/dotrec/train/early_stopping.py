"""Early stopping on the tuning holdout: a model's epoch count chosen without the test set.

:func:`select_epochs` fits a fresh copy of a model (same configuration; its ``epochs`` is the
maximum) on the training part of the split's tuning holdout (:mod:`dotrec.eval.holdout`: each
user's latest training interaction for a leave-one-out split, a seeded 20% of each user's
training items for a split given by files), evaluates it on that holdout after every epoch
(the split's protocol, ``metric@k``)
and stops ``patience`` epochs after the best one. :func:`fit_early_stopped` then fits the model
for the best number of epochs on all of ``split.train``: the protocol of the NCF record
(experiments/ncf_ml1m.md, run 2). The test items are never read while choosing.

A NeuMF started from a pretrained GMF and MLP needs them fitted on the holdout's training part
too: they are refitted there from their own configurations, and epoch 0 (the pretrained
combination before any step) is a candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dotrec.data.splits import DEFAULT_EVAL_NEGATIVES, FileSplit, Split
from dotrec.errors import ConfigError
from dotrec.eval.holdout import check_metric, holdout_score, tuning_holdout
from dotrec.models.base import Model


@dataclass(frozen=True)
class EpochSelection:
    """The outcome of a selection: the best epoch, its holdout value, every epoch's value."""

    best_epoch: int
    best_value: float
    values: dict[int, float]
    metric: str
    k: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form (stored in the fitted model's ``fit_info``)."""
        return {
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "metric": f"{self.metric}@{self.k}",
            "epochs_run": max(self.values),
            "values": {str(e): v for e, v in self.values.items()},
        }


class EarlyStopping:
    """Patience on a per-epoch value (higher is better): the rule every early stop in dotrec uses.

    ``update(epoch, value)`` records an epoch and says whether to stop: ``patience`` epochs have
    passed since the best one. Ties go to the earlier epoch (fewer epochs for the same value).
    """

    def __init__(self, patience: int) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(f"patience must be an integer >= 1, got {patience!r}")
        self.patience = patience
        self.values: dict[int, float] = {}

    def update(self, epoch: int, value: float) -> bool:
        """Record ``value`` for ``epoch``; True when training should stop."""
        self.values[epoch] = value
        return epoch - self.best_epoch >= self.patience

    @property
    def best_epoch(self) -> int:
        return max(self.values, key=lambda e: (self.values[e], -e))

    @property
    def best_value(self) -> float:
        return self.values[self.best_epoch]


class _Stop(Exception):
    """Raised from the epoch callback once ``patience`` epochs passed without improvement."""


def _pretrained(model: Model) -> tuple[Model, Model] | None:
    return getattr(model, "pretrained_models", None)


def select_epochs(
    model: Model,
    split: Split | FileSplit,
    *,
    patience: int,
    metric: str = "ndcg",
    k: int = 10,
    seed: int = 0,
    holdout_negatives: int = DEFAULT_EVAL_NEGATIVES,
    holdout_users: int | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> EpochSelection:
    """Choose ``model``'s epoch count on the holdout of ``split`` (see the module doc).

    ``model`` itself is not fitted; ``on_epoch(epoch, value)`` reports each holdout value.
    """
    stopper = EarlyStopping(patience)
    check_metric(split, metric)
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    holdout = tuning_holdout(split, seed, holdout_negatives, holdout_users)

    def consider(epoch: int, m: Model) -> None:
        value = holdout_score(m, holdout, metric, k)
        if on_epoch is not None:
            on_epoch(epoch, value)
        if stopper.update(epoch, value):
            raise _Stop

    trial = type(model).from_config(model.config())
    pre = _pretrained(model)
    if pre is not None:
        refitted = [type(p).from_config(p.config()).fit(holdout.train) for p in pre]
        start = type(model).from_config({**model.config(), "epochs": 0})
        for m in (start, trial):
            m.set_pretrained(*refitted)  # type: ignore[attr-defined]
        consider(0, start.fit(holdout.train))
    try:
        trial.fit(holdout.train, on_epoch=consider)
    except _Stop:
        pass
    return EpochSelection(stopper.best_epoch, stopper.best_value, stopper.values, metric, k)


def fit_early_stopped(
    model: Model,
    split: Split | FileSplit,
    *,
    patience: int,
    metric: str = "ndcg",
    k: int = 10,
    seed: int = 0,
    holdout_negatives: int = DEFAULT_EVAL_NEGATIVES,
    holdout_users: int | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[Model, EpochSelection]:
    """Select the epoch count on the holdout, then fit that many epochs on ``split.train``."""
    selection = select_epochs(
        model,
        split,
        patience=patience,
        metric=metric,
        k=k,
        seed=seed,
        holdout_negatives=holdout_negatives,
        holdout_users=holdout_users,
        on_epoch=on_epoch,
    )
    final = with_epochs(model, selection.best_epoch)
    final.fit(split.train)
    final.fit_info["early_stopping"] = selection.as_dict()
    return final, selection


def with_epochs(model: Model, epochs: int) -> Model:
    """An unfitted copy of ``model`` with ``epochs`` epochs (and its pretrained models)."""
    copy = type(model).from_config({**model.config(), "epochs": epochs})
    pre = _pretrained(model)
    if pre is not None:
        copy.set_pretrained(*pre)  # type: ignore[attr-defined]
    return copy

"""Fair hyperparameter tuning with Optuna on the tuning holdout (``dotrec tune``).

Every model is tuned the same way: TPE over the search space of :mod:`dotrec.tune.spaces`, the
sampled-protocol metric on ``split.holdout(seed)`` as the objective (the test set is never
read), per-epoch pruning, durable storage (SQLite by default, PostgreSQL for several workers)
and a budget of finished trials. See ``docs/tuning.md``.
"""

from dotrec.eval.holdout import METRICS
from dotrec.tune.objective import EpochEvent, HoldoutObjective
from dotrec.tune.runner import (
    PRUNERS,
    TuneProgress,
    TuneResult,
    TuneSettings,
    default_storage,
    open_storage,
    open_study,
    redact,
    run_trials,
    storage_label,
    summarize,
    tune,
)
from dotrec.tune.spaces import (
    REFERENCE,
    SIZE_MULTIPLIER,
    SPACES,
    counted_size,
    fit_config,
    reference,
    space,
    width_for_size,
)

__all__ = [
    "METRICS",
    "PRUNERS",
    "REFERENCE",
    "SIZE_MULTIPLIER",
    "SPACES",
    "EpochEvent",
    "HoldoutObjective",
    "TuneProgress",
    "TuneResult",
    "TuneSettings",
    "counted_size",
    "default_storage",
    "fit_config",
    "open_storage",
    "open_study",
    "redact",
    "storage_label",
    "reference",
    "run_trials",
    "space",
    "summarize",
    "tune",
    "width_for_size",
]

"""Training helpers that wrap a model's ``fit``: early stopping on the tuning holdout."""

from dotrec.train.early_stopping import (
    EarlyStopping,
    EpochSelection,
    fit_early_stopped,
    select_epochs,
    with_epochs,
)

__all__ = ["EarlyStopping", "EpochSelection", "fit_early_stopped", "select_epochs", "with_epochs"]

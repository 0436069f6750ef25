"""Fixtures for the tuning tests: a small split and a poisoned copy of it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dotrec.data.splits import Split
from tests.conftest import planted_split


class Poison:
    """Stands in for a test array: any use of it raises, so a test fails if it is read."""

    def _touch(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the test split was read")

    __len__ = __iter__ = __getitem__ = __array__ = __eq__ = __bool__ = _touch

    def __getattr__(self, name: str) -> Any:
        self._touch()


def planted() -> Split:
    """The split the tuning tests share (tiny, planted blocks, 20 negatives)."""
    return planted_split(n_users=80, n_items=40, per_user=8, n_negatives=20)


@pytest.fixture
def split() -> Split:
    return planted()


def poisoned(split: Split, how: str) -> Split:
    """``split`` with its test data unreadable (``raise``) or replaced by garbage."""
    if how == "raise":
        return dataclasses.replace(
            split, test_users=Poison(), test_items=Poison(), negatives=Poison()
        )
    r = np.random.default_rng(123)
    return dataclasses.replace(
        split,
        test_items=r.integers(0, split.n_items, split.n_test),
        negatives=r.integers(-(10**6), 10**6, split.negatives.shape),
    )


def storage_url(tmp_path: Path, name: str = "optuna.db") -> str:
    return f"sqlite:///{tmp_path / name}"

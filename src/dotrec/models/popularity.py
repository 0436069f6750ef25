"""Popularity: the sanity baseline. Every user gets the same ranking, by training count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from dotrec.data.interactions import Interactions
from dotrec.models.base import EpochCallback, Model, register


@register
class Popularity(Model):
    """Scores item ``i`` by its number of training interactions (a constant across users)."""

    name = "popularity"

    def __init__(self) -> None:
        super().__init__()
        self.item_counts = np.zeros(0, np.float32)

    def config(self) -> dict[str, Any]:
        return {}

    def _fit(self, train: Interactions, on_epoch: EpochCallback | None) -> None:
        self.item_counts = train.item_counts.astype(np.float32)
        self.fit_info["epochs"] = 1
        if on_epoch is not None:
            on_epoch(1, self)

    def score(self, user_indices: npt.ArrayLike, item_indices: npt.ArrayLike) -> np.ndarray:
        u, i = self._pairs(user_indices, item_indices)
        return self.item_counts[i]

    def score_all(self, user_indices: npt.ArrayLike, batch_size: int | None = None) -> np.ndarray:
        """The counts, one row per user (no intermediate arrays: ``batch_size`` has no use)."""
        self._check_fitted()
        n = len(np.asarray(user_indices))
        return np.broadcast_to(self.item_counts, (n, self.n_items)).copy()

    def fold_in(self, item_lists: Sequence[npt.ArrayLike]) -> np.ndarray:
        """Popularity has no user parameters: empty rows (every user ranks alike)."""
        return np.zeros((len(self._fold_in_items(item_lists)), 0), np.float32)

    def score_rows(self, rows: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.broadcast_to(self.item_counts, (len(rows), self.n_items)).copy()

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"item_counts": self.item_counts}

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        counts = arrays["item_counts"]
        if counts.shape != (self.n_items,):
            raise ValueError(f"item_counts has shape {counts.shape}, expected ({self.n_items},)")
        self.item_counts = counts.astype(np.float32, copy=False)

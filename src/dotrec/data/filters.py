"""Filters applied to raw interactions before splitting: a rating threshold and a k-core.

``min_rating`` keeps the rows whose rating is at least the threshold (explicit ratings turned
into implicit positives, e.g. 4 and 5 stars on MovieLens). ``min_user_count`` and
``min_item_count`` keep the iterated k-core: users with fewer interactions than the minimum and
items with fewer are removed, again and again until none is left to remove (removing an item
can push a user below the minimum), as RecBole and Cornac do. The result is reindexed: users
and items without any remaining interaction leave the index spaces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dotrec.data.interactions import Interactions
from dotrec.errors import ConfigError, DataError


@dataclass(frozen=True)
class FilterReport:
    """What a filter removed."""

    rows_below_rating: int = 0
    core_rounds: int = 0
    rows_out_of_core: int = 0
    users_removed: int = 0
    items_removed: int = 0

    def lines(self) -> list[str]:
        """Human-readable lines (empty when nothing was removed)."""
        out = []
        if self.rows_below_rating:
            out.append(f"removed {self.rows_below_rating} interactions below the rating threshold")
        if self.rows_out_of_core:
            out.append(
                f"k-core ({self.core_rounds} rounds): removed {self.rows_out_of_core} "
                f"interactions, {self.users_removed} users and {self.items_removed} items"
            )
        elif self.users_removed or self.items_removed:
            out.append(
                f"removed {self.users_removed} users and {self.items_removed} items left "
                "without interactions"
            )
        return out


def filter_interactions(
    data: Interactions,
    *,
    min_rating: float | None = None,
    min_user_count: int = 0,
    min_item_count: int = 0,
) -> tuple[Interactions, FilterReport]:
    """Apply the rating threshold, then the iterated k-core; returns the data and a report."""
    if min_user_count < 0 or min_item_count < 0:
        raise ConfigError("minimum counts must be >= 0")
    keep = np.ones(len(data), dtype=bool)
    below = 0
    if min_rating is not None:
        if data.ratings is None:
            raise DataError(f"--min-rating needs ratings, but {data.source or 'the data'} has none")
        keep &= data.ratings >= np.float32(min_rating)
        below = int((~keep).sum())
    rounds = 0
    before_core = int(keep.sum())
    while min_user_count > 1 or min_item_count > 1:
        users = np.bincount(data.user_index[keep], minlength=data.n_users)
        items = np.bincount(data.item_index[keep], minlength=data.n_items)
        drop = keep & (
            (users[data.user_index] < min_user_count) | (items[data.item_index] < min_item_count)
        )
        if not drop.any():
            break
        keep &= ~drop
        rounds += 1
    if not keep.any():
        raise DataError(
            f"no interaction is left after the filters (min rating {min_rating}, "
            f"min counts {min_user_count} per user and {min_item_count} per item)"
        )
    u, i = data.user_index[keep], data.item_index[keep]
    kept_users, kept_items = np.unique(u), np.unique(i)
    out = Interactions.from_ids(
        data.users.external(u),
        data.items.external(i),
        timestamps=None if data.timestamps is None else data.timestamps[keep],
        ratings=None if data.ratings is None else data.ratings[keep],
        source=data.source,
    )
    report = FilterReport(
        rows_below_rating=below,
        core_rounds=rounds,
        rows_out_of_core=before_core - int(keep.sum()),
        users_removed=data.n_users - len(kept_users),
        items_removed=data.n_items - len(kept_items),
    )
    return out, report

"""Leave-one-out splits, sampled evaluation negatives, and the tuning holdout.

Procedure (:func:`leave_one_out`)
---------------------------------
* Each user with at least two interactions gives up one: the interaction with the latest
  timestamp. Ties on the latest timestamp go to the row that comes last in input order. Users
  with a single interaction keep it in training and get no test item.
* Without timestamps, the held-out interaction is drawn uniformly at random per user from a
  stream seeded by ``seed``.
* Each test user gets ``n_negatives`` evaluation negatives drawn uniformly *without replacement*
  from the items the user never interacted with (neither in training nor the held-out item),
  from a stream seeded by ``seed``.

The tuning holdout (:meth:`Split.holdout`) applies the same procedure to the training
interactions only; the test items and negatives are never read, so nothing is tuned on test data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dotrec.data.interactions import Interactions
from dotrec.data.negatives import eval_negatives
from dotrec.errors import ConfigError
from dotrec.random import rng as make_rng

DEFAULT_EVAL_NEGATIVES = 99


class _OnTraining:
    """Sizes of a split: those of its training interactions' index space."""

    train: Interactions

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items


@dataclass(frozen=True, eq=False)
class Split(_OnTraining):
    """A leave-one-out split: training interactions and one held-out item per test user.

    Attributes
    ----------
    train : Interactions
    test_users, test_items : int64 arrays of shape (n_test,)
        Index-space user and its held-out item; no user appears twice.
    negatives : int64 array of shape (n_test, n_negatives)
        Sampled evaluation negatives, row-aligned with ``test_users`` (may have 0 columns).
    name : str
    """

    train: Interactions
    test_users: np.ndarray
    test_items: np.ndarray
    negatives: np.ndarray
    name: str = "split"

    @property
    def n_test(self) -> int:
        return len(self.test_users)

    def holdout(self, seed: int = 0, n_negatives: int = DEFAULT_EVAL_NEGATIVES) -> Split:
        """The tuning split: leave-one-out applied to ``train`` alone (test data unread)."""
        return leave_one_out(
            self.train, seed=seed, n_negatives=n_negatives, name=f"{self.name}/holdout"
        )

    def __repr__(self) -> str:
        return (
            f"Split(name={self.name!r}, train={self.train!r}, n_test={self.n_test}, "
            f"n_negatives={self.negatives.shape[1]})"
        )


def leave_one_out(
    data: Interactions,
    *,
    seed: int = 0,
    n_negatives: int = DEFAULT_EVAL_NEGATIVES,
    name: str = "split",
) -> Split:
    """Hold out each user's latest interaction and sample evaluation negatives (see module doc)."""
    if n_negatives < 0:
        raise ConfigError("n_negatives must be >= 0")
    offsets = data.user_offsets
    counts = data.user_counts
    test_users = np.flatnonzero(counts >= 2).astype(np.int64)
    if data.timestamps is not None:
        n = len(data)
        # Rows are grouped by user in input order. Sort by (user, timestamp, position): the last
        # row of each user's block is the latest, ties to the last in input order.
        order = np.lexsort((np.arange(n), data.timestamps, data.user_index))
        rows = order[offsets[test_users + 1] - 1]
    else:
        r = make_rng(seed, "leave_one_out")
        pick = np.floor(r.random(len(test_users)) * counts[test_users]).astype(np.int64)
        rows = offsets[test_users] + pick
    mask = np.ones(len(data), dtype=bool)
    mask[rows] = False
    train = data.select(mask)
    test_items = data.item_index[rows].astype(np.int64)
    negatives = sample_negatives(data, test_users, n_negatives, seed=seed)
    return Split(
        train=train, test_users=test_users, test_items=test_items, negatives=negatives, name=name
    )


def sample_negatives(
    data: Interactions, users: np.ndarray, n_negatives: int, *, seed: int = 0
) -> np.ndarray:
    """For each user, ``n_negatives`` distinct items the user never interacted with in ``data``
    (:func:`dotrec.data.negatives.eval_negatives`)."""
    return eval_negatives(data, users, n_negatives, seed=seed)


#: Share of each user's training items the tuning holdout of a :class:`FileSplit` takes (the
#: test files of LightGCN's benchmarks hold about 20% of each user's items).
DEFAULT_HOLDOUT_FRACTION = 0.2


@dataclass(frozen=True)
class FileSplit(_OnTraining):
    """A split given by files: training interactions and a test set with any number of items
    per user (LightGCN's benchmarks), evaluated by full ranking (:mod:`dotrec.eval.ranking`).

    Attributes
    ----------
    train, test : Interactions
        The same index space (``n_users`` x ``n_items``); no test pair is a training pair.
    name : str
    """

    train: Interactions
    test: Interactions
    name: str = "split"

    def __post_init__(self) -> None:
        if (self.train.n_users, self.train.n_items) != (self.test.n_users, self.test.n_items):
            raise ConfigError(
                f"{self.name}: train ({self.train.n_users} x {self.train.n_items}) and test "
                f"({self.test.n_users} x {self.test.n_items}) must share one index space"
            )

    @property
    def test_users(self) -> np.ndarray:
        """Users with at least one test item (the users every metric averages over)."""
        return np.flatnonzero(self.test.user_counts > 0)

    def holdout(
        self,
        seed: int = 0,
        fraction: float = DEFAULT_HOLDOUT_FRACTION,
        users: int | None = None,
    ) -> FileSplit:
        """The tuning split, from the training data alone (the test file is never read).

        Each user with at least two training items gives ``round(fraction * n)`` of them
        (at least 1, at most ``n - 1``), drawn uniformly without replacement from the stream
        ``(seed, "file_holdout")``, to the holdout's test set; the rest stay in training.

        ``users`` keeps the holdout's test items of only that many users, drawn uniformly from
        the stream ``(seed, "file_holdout_users")``, so that scoring the holdout costs a
        fraction of a full ranking (a forward pass per user and item for learned similarity).
        The training part does not depend on it: the other users' held-out items are left out
        of both parts, and every model tuned with the same seed sees the same sample.
        """
        if not 0 < fraction < 1:
            raise ConfigError(f"holdout fraction must be in (0, 1), got {fraction}")
        if users is not None and users < 1:
            raise ConfigError(f"holdout users must be >= 1, got {users}")
        train = self.train
        csr = train.csr
        counts = np.diff(csr.indptr)
        r = make_rng(seed, "file_holdout")
        take = np.zeros(len(csr.indices), dtype=bool)
        for u in np.flatnonzero(counts >= 2):
            n = int(counts[u])
            k = min(n - 1, max(1, int(round(fraction * n))))
            take[csr.indptr[u] + r.choice(n, size=k, replace=False)] = True
        row_user = np.repeat(np.arange(train.n_users), counts)
        scored = take
        eligible = np.flatnonzero(counts >= 2)
        if users is not None and users < len(eligible):
            chosen = np.zeros(train.n_users, dtype=bool)
            pick = make_rng(seed, "file_holdout_users").choice(len(eligible), users, replace=False)
            chosen[eligible[pick]] = True
            scored = take & chosen[row_user]

        def part(mask: np.ndarray) -> Interactions:
            return Interactions.from_indices(
                row_user[mask],
                csr.indices[mask],
                n_users=train.n_users,
                n_items=train.n_items,
                users=train.users,
                items=train.items,
                warn_duplicates=False,
            )

        return FileSplit(part(~take), part(scored), name=f"{self.name}/holdout")

    def __repr__(self) -> str:
        return (
            f"FileSplit(name={self.name!r}, train={self.train!r}, "
            f"test_users={len(self.test_users)}, test_pairs={len(self.test)})"
        )

"""Negative items: items a user has no interaction with, drawn uniformly. One implementation.

Every sampled negative in dotrec that must avoid the user's positives comes from here:

* :func:`training_negatives`: NCF's training negatives, ``n_negatives`` per training row, with
  replacement, uniform over the user's non-training items (the reference's
  ``get_train_instances``);
* :func:`eval_negatives`: the sampled protocol's evaluation negatives, ``n`` *distinct* items per
  test user (without replacement).

Both draw *ranks* in the user's complement (``0 .. n_items - |I_u| - 1``) and map them to item
indices with :func:`complement_items`, exactly and without rejection loops. (MF's SGD kernel
draws its negatives inline from the whole catalog, positives included, because that is what the
reference MF does; see :mod:`dotrec.models.mf`.)
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from dotrec.data.interactions import Interactions
from dotrec.errors import ConfigError, DataError
from dotrec.random import rng as make_rng


def complement_items(csr: sp.csr_matrix, users: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The ``ranks[t]``-th item (0-based, ascending) that ``users[t]`` has no interaction with.

    ``csr`` holds each user's items with sorted columns. The r-th free item of a user with
    sorted positives ``p_0 < p_1 < ...`` is ``r + #{j : p_j - j <= r}``; the keys ``p_j - j``
    are non-decreasing within a row, so one global ``searchsorted`` over ``row * n_items + key``
    serves every user at once.
    """
    n_items = csr.shape[1]
    indptr = csr.indptr.astype(np.int64)
    counts = np.diff(indptr)
    row = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    local = np.arange(len(row), dtype=np.int64) - indptr[row]
    keys = row * n_items + (csr.indices.astype(np.int64) - local)
    users = np.asarray(users, dtype=np.int64)
    ranks = np.asarray(ranks, dtype=np.int64)
    shift = np.searchsorted(keys, users * n_items + ranks, side="right") - indptr[users]
    return ranks + shift


def training_negatives(train: Interactions, n_negatives: int, r: np.random.Generator) -> np.ndarray:
    """``n_negatives`` items per training row, uniform among the user's non-training items.

    Returns int64 of shape (len(train) * n_negatives,), row-major by training row.
    """
    users = np.repeat(train.user_index.astype(np.int64), n_negatives)
    free = train.n_items - train.user_counts.astype(np.int64)
    if len(users) and (free[users] <= 0).any():
        u = int(users[np.flatnonzero(free[users] <= 0)[0]])
        raise DataError(
            f"user index {u} interacted with all {train.n_items} items, so no negative "
            "can be drawn for it; drop such users or use n_negatives=0"
        )
    ranks = (r.random(len(users)) * free[users]).astype(np.int64)
    np.minimum(ranks, free[users] - 1, out=ranks)  # guards the (measure-zero) rounding edge
    return complement_items(train.csr, users, ranks)


def eval_negatives(
    data: Interactions, users: np.ndarray, n_negatives: int, *, seed: int = 0
) -> np.ndarray:
    """For each user, ``n_negatives`` distinct items the user never interacted with in ``data``.

    Uniform without replacement over the complement of the user's items, in random order.
    """
    users = np.asarray(users, dtype=np.int64)
    out = np.empty((len(users), n_negatives), dtype=np.int64)
    if n_negatives == 0:
        return out
    r = make_rng(seed, "eval_negatives")
    free = data.n_items - data.user_counts.astype(np.int64)
    ranks = np.empty_like(out)
    for k, u in enumerate(users):
        if free[u] < n_negatives:
            raise ConfigError(
                f"user {u} has only {free[u]} items it never interacted with; "
                f"cannot sample {n_negatives} negatives"
            )
        ranks[k] = np.sort(r.choice(free[u], size=n_negatives, replace=False))
        # The order is drawn from the same stream, after the set, as it always was.
        ranks[k] = r.permutation(ranks[k])
    items = complement_items(data.csr, np.repeat(users, n_negatives), ranks.ravel())
    out[:] = items.reshape(len(users), n_negatives)
    return out

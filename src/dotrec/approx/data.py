"""The synthetic data of the learn-a-dot-product experiment (Rendle et al. 2020, section 4).

User and item embeddings are drawn from ``N(0, sigma^2 I)`` with
``sigma = ((1.13^2 - 0.85^2) / d) ** (1/4)``, so that ``<u, i>`` has variance
``d * sigma^4 = 1.13^2 - 0.85^2``. A label is ``y = <u, i> + eps`` with ``eps ~ N(0, 0.85^2)``:
the true dot product then has an RMSE of about 0.85 (the noise floor) and the zero predictor about
``sqrt(Var y) = 1.13``.

``100 * n_users`` distinct (user, item) pairs are drawn without replacement, in random order, and
split 90 % train / 10 % test, so no pair is in both. A *fresh* set of pairs has its own, newly
drawn user and item embeddings (one new user and one new item per pair).

Every random stream is derived from ``(seed, purpose, d, n_users, repeat)`` with
:func:`dotrec.random.rng`, so the data of a cell does not depend on the grid around it, on the
number of epochs, or on the MLP that is trained on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dotrec.errors import ConfigError
from dotrec.random import rng

#: Standard deviation of the label noise, i.e. the RMSE floor of the true dot product.
LABEL_STD = 0.85
#: Standard deviation of the labels, i.e. the RMSE of the zero predictor.
TARGET_STD = 1.13
#: Distinct pairs drawn per user.
PAIRS_PER_USER = 100
#: Fraction of the pairs held out as the test set.
TEST_FRACTION = 0.1
#: Pairs in the fresh set (new embeddings).
N_FRESH = 100_000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def embedding_sigma(d: int) -> float:
    """Standard deviation of each embedding coordinate for dimension ``d``."""
    if d < 1:
        raise ConfigError(f"embedding dimension must be >= 1, got {d}")
    return float(((TARGET_STD**2 - LABEL_STD**2) / d) ** 0.25)


def _sorted_unique(codes: IntArray) -> IntArray:
    # Sort + mask, not np.unique: with numpy 2.4 np.unique was ~30x slower on 1.4e7 int64 codes.
    codes = np.sort(codes)
    keep = np.empty(codes.size, dtype=bool)
    keep[:1] = True
    np.not_equal(codes[1:], codes[:-1], out=keep[1:])
    return codes[keep]


def sample_pairs(
    n_users: int, n_items: int, n_pairs: int, generator: np.random.Generator
) -> tuple[IntArray, IntArray]:
    """Draw ``n_pairs`` distinct (user, item) pairs uniformly, in random order.

    Vectorized: pair codes ``user * n_items + item`` are drawn in batches, deduplicated (sort,
    drop repeats) and topped up until there are enough; a random subset of the distinct
    codes is then taken in random order. Where the pairs fill half the matrix or more, a
    permutation of all codes is used instead. Cost is ``O(n_pairs log n_pairs)``, never
    ``O(n_users * n_items)`` for sparse draws.

    Returns ``(user_index, item_index)``, two int64 arrays of shape ``(n_pairs,)``.
    """
    total = n_users * n_items
    if n_pairs < 0 or n_pairs > total:
        raise ConfigError(
            f"cannot draw {n_pairs} distinct pairs from {n_users} users x "
            f"{n_items} items ({total} pairs)"
        )
    if 2 * n_pairs >= total:
        codes = generator.permutation(total)[:n_pairs]
    else:
        codes = np.empty(0, dtype=np.int64)
        while codes.size < n_pairs:
            missing = n_pairs - codes.size
            # Expected duplicates are a fraction ~ n_pairs / total < 1/2 of a batch.
            draw = generator.integers(0, total, size=int(missing * 1.1) + 64, dtype=np.int64)
            codes = _sorted_unique(np.concatenate([codes, draw]))
        # `codes` is a uniformly random set (sorted); a random subset in random order of it is
        # a uniformly random ordered sample of distinct pairs.
        codes = generator.permutation(codes)[:n_pairs]
    codes = codes.astype(np.int64, copy=False)
    return codes // n_items, codes % n_items


def pair_dots(
    user_factors: FloatArray,
    item_factors: FloatArray,
    users: IntArray | None = None,
    items: IntArray | None = None,
    chunk: int = 1 << 16,
) -> FloatArray:
    """Dot products ``<user_factors[users[k]], item_factors[items[k]]>`` for every ``k``.

    Without indices, row ``k`` of one matrix meets row ``k`` of the other. Rows are gathered in
    chunks, so memory stays ``O(chunk * d)`` however many pairs there are.
    """
    n = user_factors.shape[0] if users is None else users.shape[0]
    out = np.empty(n, dtype=np.float64)
    for s in range(0, n, chunk):
        a = user_factors[s : s + chunk] if users is None else user_factors[users[s : s + chunk]]
        b = item_factors[s : s + chunk] if items is None else item_factors[items[s : s + chunk]]
        out[s : s + chunk] = np.einsum("ij,ij->i", a, b)
    return out


def rmse(pred: FloatArray, y: FloatArray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - y) ** 2)))


@dataclass(frozen=True)
class DotDataset:
    """One draw of the experiment's data.

    ``user_factors``/``item_factors`` are ``(n_users, d)``/``(n_items, d)`` float64;
    ``train_*``/``test_*`` hold int64 indices and float64 labels of the split pairs;
    ``fresh_user_factors``/``fresh_item_factors`` are ``(n_fresh, d)`` with labels
    ``fresh_labels``.
    """

    user_factors: FloatArray
    item_factors: FloatArray
    train_users: IntArray
    train_items: IntArray
    train_labels: FloatArray
    test_users: IntArray
    test_items: IntArray
    test_labels: FloatArray
    fresh_user_factors: FloatArray
    fresh_item_factors: FloatArray
    fresh_labels: FloatArray

    @property
    def dim(self) -> int:
        """Embedding dimension ``d``."""
        return int(self.user_factors.shape[1])

    def dot_predictions(self, part: str) -> FloatArray:
        """The true dot product ``<u, i>`` for ``part`` in ``train``, ``test`` or ``fresh``."""
        if part == "fresh":
            return pair_dots(self.fresh_user_factors, self.fresh_item_factors)
        users, items, _ = self.part(part)
        return pair_dots(self.user_factors, self.item_factors, users, items)

    def part(self, part: str) -> tuple[IntArray, IntArray, FloatArray]:
        """``(user_index, item_index, labels)`` of ``train`` or ``test``."""
        if part == "train":
            return self.train_users, self.train_items, self.train_labels
        if part == "test":
            return self.test_users, self.test_items, self.test_labels
        raise ValueError(f"part must be 'train' or 'test', got {part!r}")

    def labels(self, part: str) -> FloatArray:
        """Labels of ``train``, ``test`` or ``fresh``."""
        return self.fresh_labels if part == "fresh" else self.part(part)[2]


def make_dataset(
    d: int, n_users: int, seed: int, *, repeat: int = 0, n_fresh: int = N_FRESH
) -> DotDataset:
    """Draw the data of one grid cell (``n_items = n_users``), deterministic in its arguments."""
    if n_users < 1:
        raise ConfigError(f"n_users must be >= 1, got {n_users}")
    if n_fresh < 1:
        raise ConfigError(f"the fresh set needs >= 1 pair, got {n_fresh}")
    n_items = n_users
    n_pairs = PAIRS_PER_USER * n_users
    if n_pairs > n_users * n_items:
        raise ConfigError(
            f"n_users must be >= {PAIRS_PER_USER} to draw {PAIRS_PER_USER} "
            f"distinct pairs per user from n_items = n_users, got {n_users}"
        )
    sigma = embedding_sigma(d)
    keys = (d, n_users, repeat)
    emb = rng(seed, "approx-dot/embeddings", *keys)
    user_factors = emb.normal(0.0, sigma, size=(n_users, d))
    item_factors = emb.normal(0.0, sigma, size=(n_items, d))
    users, items = sample_pairs(n_users, n_items, n_pairs, rng(seed, "approx-dot/pairs", *keys))
    labels = pair_dots(user_factors, item_factors, users, items)
    labels += rng(seed, "approx-dot/noise", *keys).normal(0.0, LABEL_STD, size=n_pairs)
    n_test = int(round(TEST_FRACTION * n_pairs))
    n_train = n_pairs - n_test

    fresh = rng(seed, "approx-dot/fresh", *keys)
    fresh_u = fresh.normal(0.0, sigma, size=(n_fresh, d))
    fresh_i = fresh.normal(0.0, sigma, size=(n_fresh, d))
    fresh_y = pair_dots(fresh_u, fresh_i) + fresh.normal(0.0, LABEL_STD, size=n_fresh)
    return DotDataset(
        user_factors=user_factors,
        item_factors=item_factors,
        train_users=users[:n_train],
        train_items=items[:n_train],
        train_labels=labels[:n_train],
        test_users=users[n_train:],
        test_items=items[n_train:],
        test_labels=labels[n_train:],
        fresh_user_factors=fresh_u,
        fresh_item_factors=fresh_i,
        fresh_labels=fresh_y,
    )

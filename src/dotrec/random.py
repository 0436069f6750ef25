"""Seed helpers: every random choice in dotrec takes an explicit seed.

Streams are derived with :class:`numpy.random.SeedSequence` from the user's seed plus a purpose
tag (and an epoch where relevant), so that one stream never shifts another: adding an evaluation
step does not change the training negatives, and epoch ``e`` of a resumed run draws exactly what
epoch ``e`` of an uninterrupted run drew.
"""

from __future__ import annotations

import zlib

import numpy as np

_MAX_SEED = 2**63 - 1


def _tag(purpose: str) -> int:
    return zlib.crc32(purpose.encode("utf-8"))


def rng(seed: int, purpose: str, *keys: int) -> np.random.Generator:
    """A numpy Generator for ``purpose`` derived from ``seed`` (and optional integer keys)."""
    seq = np.random.SeedSequence([int(seed), _tag(purpose), *map(int, keys)])
    return np.random.default_rng(seq)


def int_seed(seed: int, purpose: str, *keys: int) -> int:
    """A 63-bit integer seed derived like :func:`rng` (for numba and torch generators)."""
    ss = np.random.SeedSequence([int(seed), _tag(purpose), *map(int, keys)])
    return int(ss.generate_state(1, dtype=np.uint64)[0] & np.uint64(_MAX_SEED))

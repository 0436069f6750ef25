"""Ranking metrics as pure functions of 0-based ranks of the held-out item.

Semantics follow He et al.'s NCF ``evaluate.py``: with a 0-based rank ``r`` of the held-out item,
HR@K = 1 and NDCG@K = 1 / log2(r + 2) when ``r < K``, else 0. MRR = 1 / (r + 1), uncut.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def hit_rate(ranks: npt.ArrayLike, k: int) -> np.ndarray:
    """Per-user HR@k (1.0 if the held-out item ranks in the top k, else 0.0)."""
    r = np.asarray(ranks)
    return (r < k).astype(np.float64)


def ndcg(ranks: npt.ArrayLike, k: int) -> np.ndarray:
    """Per-user NDCG@k for a single relevant item: 1 / log2(rank + 2) inside the top k."""
    r = np.asarray(ranks, dtype=np.float64)
    return np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0)


def reciprocal_rank(ranks: npt.ArrayLike) -> np.ndarray:
    """Per-user reciprocal rank 1 / (rank + 1)."""
    return 1.0 / (np.asarray(ranks, dtype=np.float64) + 1.0)


def mean_and_stderr(values: npt.ArrayLike) -> tuple[float, float]:
    """Mean and its standard error (sample std / sqrt(n))."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(v.mean()), se

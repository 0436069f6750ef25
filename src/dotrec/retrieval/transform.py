"""Vector transforms that turn a biased dot-product model into plain nearest-neighbour search.

Bias folding
    ``score(u, i) = g + b_u + b_i + <p_u, q_i>``. The global bias ``g`` and the user bias
    ``b_u`` are the same for every item of one user, so they never change a user's ranking.
    With query ``[p_u, 1]`` and item ``[q_i, b_i]`` the inner product is ``<p_u, q_i> + b_i``:
    the ranking is exact.
MIPS to L2 (Bachrach et al. 2014)
    Maximum inner product search is not a metric search: an item with a large norm can beat
    every near neighbour. Appending ``sqrt(M^2 - |x_i|^2)`` to each item (``M`` the largest item
    norm) puts all items on a sphere of radius ``M``; appending 0 to the query gives
    ``|q - x_i|^2 = |q|^2 + M^2 - 2 <q, x_i>``, so ascending L2 distance is descending inner
    product. Indexes built on distances need this: IVF's k-means cells, and HNSW graphs, whose
    recall in plain inner-product mode stalls as the catalog grows. The bias-folded vectors of
    a trained model have varied norms, which is exactly where inner-product indexes fail.

References
----------
Y. Bachrach et al. "Speeding Up the Xbox Recommender System Using a Euclidean Transformation
for Inner-Product Spaces". RecSys 2014.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def fold_items(item_factors: npt.ArrayLike, item_bias: npt.ArrayLike | None) -> np.ndarray:
    """Items ``[q_i, b_i]`` as float32 of shape (n_items, d + 1)."""
    q = np.asarray(item_factors, dtype=np.float32)
    b = np.zeros(len(q), np.float32) if item_bias is None else np.asarray(item_bias, np.float32)
    return np.hstack([q, b[:, None]])


def fold_queries(user_factors: npt.ArrayLike) -> np.ndarray:
    """Queries ``[p_u, 1]`` as float32 of shape (n, d + 1)."""
    p = np.atleast_2d(np.asarray(user_factors, dtype=np.float32))
    return np.hstack([p, np.ones((len(p), 1), np.float32)])


def mips_to_l2_items(items: npt.ArrayLike) -> tuple[np.ndarray, float]:
    """Append ``sqrt(M^2 - |x|^2)`` to each item; return the vectors and ``M``."""
    x = np.asarray(items, dtype=np.float32)
    sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    max_sq = float(sq.max()) if len(sq) else 0.0
    extra = np.sqrt(np.maximum(max_sq - sq, 0.0)).astype(np.float32)
    return np.ascontiguousarray(np.hstack([x, extra[:, None]])), float(np.sqrt(max_sq))


def mips_to_l2_queries(queries: npt.ArrayLike) -> np.ndarray:
    """Append 0 to each query."""
    q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    return np.ascontiguousarray(np.hstack([q, np.zeros((len(q), 1), np.float32)]))

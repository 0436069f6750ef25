"""The item index interface and the exact backend, with the registry of index kinds.

:mod:`dotrec.retrieval.index` builds, saves and loads indexes by kind through
:data:`INDEXES`; :mod:`dotrec.retrieval.ann` registers the faiss backends. This module imports
neither, so the package has no import cycle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from dotrec.errors import ConfigError
from dotrec.retrieval.topk import topk_dot

#: Results per query used for the recall reported at build time.
RECALL_K = 10

#: Index backends by kind, like the model registry: filled by :func:`register_index`.
INDEXES: dict[str, type[ItemIndex]] = {}

IndexClass = TypeVar("IndexClass", bound="type[ItemIndex]")


def register_index(cls: IndexClass) -> IndexClass:
    """Class decorator: make an index kind buildable and loadable by its ``kind``."""
    INDEXES[cls.kind] = cls
    return cls


class ItemIndex(ABC):
    """Top-k search over item vectors ``item_factors`` (n_items x d) plus ``item_bias``.

    Parameters
    ----------
    item_factors : float array of shape (n_items, d)
        Kept without a copy when already float32 and C-contiguous (a model's own array).
    item_bias : float array of shape (n_items,), optional
    threads : int
        Threads one :meth:`search` call may use (1: the calling thread only).
    """

    #: Backend name: ``exact``, ``hnsw``, ``ivf`` or ``ivfpq``.
    kind: ClassVar[str]

    def __init__(
        self,
        item_factors: npt.ArrayLike,
        item_bias: npt.ArrayLike | None = None,
        *,
        threads: int = 1,
    ) -> None:
        vectors = np.ascontiguousarray(item_factors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"item_factors must be 2-D, got shape {vectors.shape}")
        bias = (
            np.zeros(len(vectors), np.float32)
            if item_bias is None
            else np.ascontiguousarray(item_bias, dtype=np.float32)
        )
        if bias.shape != (len(vectors),):
            raise ValueError(f"item_bias has shape {bias.shape}, expected ({len(vectors)},)")
        if int(threads) != threads or threads < 1:
            raise ConfigError(f"threads must be a positive integer, got {threads!r}")
        self.vectors = vectors
        self.bias = bias
        self.threads = int(threads)
        #: Build report: ``build_seconds``, ``recall@10`` against exact, ``memory_bytes``, ...
        self.build_info: dict[str, Any] = {}

    @property
    def n_items(self) -> int:
        return self.vectors.shape[0]

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}(n_items={self.n_items}, dim={self.dim}{args})"

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Build and search parameters as a JSON-safe dict (constructor keywords)."""

    @abstractmethod
    def search(
        self, queries: npt.ArrayLike, k: int, *, exclude: Sequence[npt.ArrayLike] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items of each query.

        Parameters
        ----------
        queries : float array of shape (n_queries, d) (or (d,) for one query)
        k : int
        exclude : sequence of n_queries integer arrays, optional
            Item indices never to return for each query (a user's seen items).

        Returns
        -------
        (item_indices, scores) : int64 and float32 arrays of shape (n_queries, k), best
            first; rows are padded with -1 / -inf when fewer items are eligible (or, for an
            approximate backend, found).
        """

    def memory_bytes(self) -> int:
        """Bytes this index holds to answer queries (item vectors and bias included)."""
        return self.vectors.nbytes + self.bias.nbytes

    def set_search_params(self, **params: Any) -> None:
        """Change search-time parameters (``ef_search``, ``nprobe``) without a rebuild."""
        if params:
            raise ConfigError(
                f"{self.kind} index has no search parameters ({', '.join(sorted(params))} given)"
            )

    def _payload(self) -> bytes | None:
        """The bytes to store beside ``index.json`` (None: nothing beyond the parameters)."""
        return None

    @classmethod
    def _restore(
        cls,
        item_factors: np.ndarray,
        item_bias: np.ndarray,
        params: dict[str, Any],
        payload: Path | None,
        threads: int,
    ) -> ItemIndex:
        """An index from :meth:`params` and the file holding :meth:`_payload`, no rebuild."""
        return cls(item_factors, item_bias, threads=threads, **params)


@register_index
class ExactIndex(ItemIndex):
    """Exact top-k by a full scan (fused dot product + heap selection, see ``topk``)."""

    kind = "exact"

    def params(self) -> dict[str, Any]:
        return {}

    def search(
        self, queries: npt.ArrayLike, k: int, *, exclude: Sequence[npt.ArrayLike] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return topk_dot(queries, self.vectors, self.bias, k, exclude=exclude, threads=self.threads)

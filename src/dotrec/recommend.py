"""Recommender: a fitted model + an item index + the items each user has seen + id maps.

Raw ids in, raw ids out. Dot-product models rank through an :class:`ItemIndex` (MIPS, exact by
default); learned-similarity models through batched ``score_all`` followed by the same exact
top-k selection, the only way they can: their score of a pair is a forward pass.

Rules
    * ``recommend(user_id, k)`` returns at most ``k`` items, best first, with the model's own
      scores (user and global biases included); ties go to the lower item index. With
      ``exclude_seen=True`` (the default) a user's training items are never returned, so a
      user who has seen all but 3 items gets 3. Without ``seen`` there is nothing to exclude.
    * ``k`` must be an integer >= 1; ``k`` above the catalog returns every eligible item.
    * An unknown user or item id raises :class:`UnknownIdError`.
    * ``recommend_for_items(item_ids, k)`` folds in a user the model has not seen from the
      items it interacted with (:meth:`Model.fold_in`, no retraining) and ranks for it the same
      way, the given items excluded. Unknown item ids are reported and ignored; no known item
      at all is a :class:`ConfigError`.
    * ``similar_items(item_id, k)`` ranks the other items by the cosine of their vectors in
      ``model.item_factors``. Cosine rather than inner product: an item's norm mostly encodes
      its popularity, so the inner product would return the most popular items for almost
      every item. Models without an ``item_factors`` table (learned-similarity models score
      user-item pairs only; item-item similarity through their network is not defined) raise
      :class:`NotSupportedError`.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from dotrec.data.ids import IdMap
from dotrec.data.interactions import Interactions
from dotrec.data.seen import load_seen
from dotrec.errors import ConfigError, NotSupportedError, UnknownIdError
from dotrec.models.base import DotProductModel, Model, check_compatible, load_model
from dotrec.retrieval.index import ExactIndex, ItemIndex, load_index
from dotrec.retrieval.topk import topk_rows
from dotrec.validate import check_k


class Recommender:
    """Top-k recommendations and similar items for raw user and item ids.

    Parameters
    ----------
    model : Model
        A fitted model.
    index : ItemIndex, optional
        For dot-product models only; default an :class:`ExactIndex` over the model's items.
    seen : Interactions, optional
        The training interactions: their id maps translate raw ids (without them, ids are the
        indices) and their items are excluded from each user's recommendations.
    threads : int
        Threads of the default exact index and of learned-model selection.
    """

    def __init__(
        self,
        model: Model,
        index: ItemIndex | None = None,
        seen: Interactions | None = None,
        *,
        threads: int = 1,
    ) -> None:
        model._check_fitted()
        if seen is not None:
            check_compatible(model, seen, "seen items")
        if index is not None:
            if not isinstance(model, DotProductModel):
                raise ConfigError(
                    f"model {model.name!r} is not a dot-product model; an item "
                    "index cannot rank for it (leave index=None)"
                )
            if index.n_items != model.n_items or index.dim != model.item_factors.shape[1]:
                raise ConfigError(
                    f"index holds {index.n_items} items of dim {index.dim}; the "
                    f"model has {model.n_items} of dim "
                    f"{model.item_factors.shape[1]}"
                )
        elif isinstance(model, DotProductModel):
            index = ExactIndex(model.item_factors, model.item_bias, threads=threads)
        self.model = model
        self.index = index
        self.seen = seen
        self.threads = threads
        self.users = seen.users if seen is not None else IdMap.identity(model.n_users)
        self.items = seen.items if seen is not None else IdMap.identity(model.n_items)
        self._inverse_norms: np.ndarray | None = None
        self._similar_lock = threading.Lock()

    @classmethod
    def from_dir(
        cls,
        model_dir: str | os.PathLike[str],
        index_kind: str | None = None,
        *,
        threads: int = 1,
        mmap: bool = False,
    ) -> Recommender:
        """Load the model, its seen items and (``index_kind``) its saved index from a directory.

        ``index_kind=None`` uses an exact index, built in memory at once; ``"hnsw"``/``"ivf"``
        load the index saved by ``dotrec index build`` (never rebuilt here). ``mmap=True``
        maps the model's arrays from its file instead of reading them
        (:func:`~dotrec.models.load_model`).
        """
        model = load_model(model_dir, mmap=mmap)
        index: ItemIndex | None = None
        if index_kind is not None:
            if not isinstance(model, DotProductModel):
                raise ConfigError(
                    f"--index applies to dot-product models; {model_dir} holds "
                    f"a {model.name!r} model, which ranks through score_all"
                )
            if index_kind == "exact":
                index = ExactIndex(model.item_factors, model.item_bias, threads=threads)
            else:
                index = load_index(model_dir, index_kind, model, threads=threads)
        return cls(model, index, load_seen(model_dir), threads=threads)

    def warm(self) -> Recommender:
        """Build now what requests would otherwise build on first use: the raw-id lookup
        tables, the seen items' CSR rows and, for models with item vectors, the item norms of
        similar items (a server calls this when it loads a model, so no request pays for it).
        For a memory-mapped model the norms wait for the first similar-items request, so that
        loading does not read the whole catalog from disk."""
        self.users.prepare()
        self.items.prepare()
        if self.seen is not None:
            _ = self.seen.csr  # the seen-item rows every request reads (built lazily)
        if not _memory_mapped(getattr(self.model, "item_factors", None)):
            try:
                self._item_inverse_norms()
            except NotSupportedError:
                pass
        return self

    def __repr__(self) -> str:
        kind = "score_all" if self.index is None else self.index.kind
        return (
            f"Recommender(model={self.model.name!r}, n_users={self.model.n_users}, "
            f"n_items={self.model.n_items}, index={kind!r}, seen={self.seen is not None})"
        )

    def user_index(self, user_id: Any) -> int:
        """The index of a raw user id; :class:`UnknownIdError` if the model has not seen it."""
        u = self.users.index(user_id)
        if u is None:
            raise UnknownIdError("user", user_id)
        return u

    def item_index(self, item_id: Any) -> int:
        """The index of a raw item id; :class:`UnknownIdError` if unknown."""
        i = self.items.index(item_id)
        if i is None:
            raise UnknownIdError("item", item_id)
        return i

    def recommend(
        self, user_id: Any, k: int = 10, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """The top-``k`` items for ``user_id``: (item ids, float32 model scores), best first."""
        idx, scores = self.top_indices(np.array([self.user_index(user_id)]), k, exclude_seen)
        keep = idx[0] >= 0
        return self.items.external(idx[0][keep]), scores[0][keep]

    def top_indices(
        self, user_indices: npt.ArrayLike, k: int = 10, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and float32 scores for a batch of user indices.

        Shapes (n_users, k); rows with fewer than ``k`` candidates end in index -1. Equal to
        :meth:`recommend` per user (the batch shares one search or one ``score_all``).
        """
        k = check_k(k)
        users = np.asarray(user_indices, dtype=np.int64)
        exclude = None
        if exclude_seen and self.seen is not None:
            exclude = [self.seen.items_of(int(u)) for u in users]
        if self.index is not None:
            m = self.model
            assert isinstance(m, DotProductModel)
            idx, scores = self.index.search(m.user_factors[users], k, exclude=exclude)
            scores = scores + (m.user_bias[users] + m.global_bias)[:, None].astype(np.float32)
        else:
            idx, scores = topk_rows(
                self.model.score_all(users), k, exclude=exclude, threads=self.threads
            )
        return idx, scores.astype(np.float32)

    def recommend_for_items(
        self, item_ids: Sequence[Any], k: int = 10
    ) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        """Top-``k`` for a new user known by its items: (item ids, scores, unknown item ids)."""
        k = check_k(k)
        known: list[int] = []
        unknown: list[Any] = []
        for item_id in item_ids:
            i = self.items.index(item_id)
            if i is None:
                unknown.append(item_id)
            else:
                known.append(i)
        if not known:
            raise ConfigError(
                "fold-in needs at least one known item"
                + (f"; unknown: {', '.join(map(str, unknown[:10]))}" if unknown else "")
            )
        idx, scores = self.top_indices_for_items([np.array(known, dtype=np.int64)], k)
        keep = idx[0] >= 0
        return self.items.external(idx[0][keep]), scores[0][keep], unknown

    def top_indices_for_items(
        self, item_lists: Sequence[npt.ArrayLike], k: int = 10
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`top_indices` for new users given by item-index lists (folded in, each
        list's items excluded); shapes (len(item_lists), k), short rows end in -1."""
        k = check_k(k)
        rows = self.model.fold_in(item_lists)
        exclude = [np.unique(np.asarray(a, dtype=np.int64)) for a in item_lists]
        if self.index is not None:
            m = self.model
            assert isinstance(m, DotProductModel)
            idx, scores = self.index.search(np.ascontiguousarray(rows[:, :-1]), k, exclude=exclude)
            scores = scores + (rows[:, -1] + m.global_bias)[:, None].astype(np.float32)
        else:
            idx, scores = topk_rows(
                self.model.score_rows(rows), k, exclude=exclude, threads=self.threads
            )
        return idx, scores.astype(np.float32)

    def similar_items(self, item_id: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to ``item_id`` by cosine: (item ids, cosines)."""
        k = check_k(k)
        i = self.item_index(item_id)
        factors, inverse = self._item_inverse_norms()
        cosines = _cosines(factors, inverse, i)
        idx, sims = topk_rows(cosines, k, exclude=[np.array([i])])
        keep = idx[0] >= 0
        return self.items.external(idx[0][keep]), sims[0][keep]

    def _item_inverse_norms(self) -> tuple[np.ndarray, np.ndarray]:
        """The item vectors and 1 / |item vector| per item (0 for a zero vector); the norms
        are computed once, on first use."""
        factors = getattr(self.model, "item_factors", None)
        if (
            not isinstance(factors, np.ndarray)
            or factors.ndim != 2
            or factors.shape[0] != self.model.n_items
        ):
            raise NotSupportedError(
                f"model {self.model.name!r} has no item embedding table (item_factors), so "
                "item-item similarity is not defined for it"
            )
        with self._similar_lock:
            if self._inverse_norms is None:
                norms = np.empty(len(factors), np.float32)
                for lo in range(0, len(factors), _SIMILAR_BLOCK):
                    block = factors[lo : lo + _SIMILAR_BLOCK]
                    norms[lo : lo + len(block)] = np.sqrt(np.einsum("ij,ij->i", block, block))
                self._inverse_norms = np.divide(
                    1.0, norms, out=np.zeros_like(norms), where=norms > 0
                )
            return factors, self._inverse_norms


#: Catalog rows per block of a similar-items scan. The catalog is read block by block and
#: never copied (a normalized copy would double the memory of a memory-mapped model); the
#: only arrays of catalog length are the inverse norms and the row of cosines.
_SIMILAR_BLOCK = 1 << 16


def _cosines(factors: np.ndarray, inverse_norms: np.ndarray, item: int) -> np.ndarray:
    """The cosine of item ``item``'s vector with every item's, as one float32 row."""
    query = np.asarray(factors[item], np.float32) * inverse_norms[item]
    out = np.empty(len(factors), np.float32)
    for lo in range(0, len(factors), _SIMILAR_BLOCK):
        block = factors[lo : lo + _SIMILAR_BLOCK]
        out[lo : lo + len(block)] = block @ query
    out *= inverse_norms
    return out


def _memory_mapped(array: Any) -> bool:
    """Whether ``array`` is a view of a memory-mapped file (``load_model(mmap=True)``)."""
    while isinstance(array, np.ndarray):
        if isinstance(array, np.memmap):
            return True
        array = array.base
    return isinstance(array, mmap.mmap)

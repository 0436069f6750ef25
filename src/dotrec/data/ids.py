"""IdMap: external ids <-> contiguous indices."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: How an integer id is written as text; longer than an int64 can be is unknown, not an error.
_INT_ID = re.compile(r"-?[0-9]+")
_MAX_INT_ID_CHARS = 20


_INT64 = np.iinfo(np.int64)


class IdMap:
    """A bijection between external ids (``user_id``/``item_id``) and indices ``0..n-1``.

    External ids are kept as a numpy array (integers, or unicode strings), so that the map can be
    stored in an ``.npz`` artifact without pickling. Integer ids are looked up by binary search
    in a sorted copy (16 bytes per id; a dict takes about 100, a gigabyte at 10^7 items), or
    directly when they are the indices themselves; string ids through a dict.
    """

    __slots__ = ("ids", "_lookup", "_sorted", "_order", "_identity")

    def __init__(self, ids: npt.ArrayLike) -> None:
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError("ids must be one-dimensional")
        if arr.dtype.kind not in "iuU":
            arr = arr.astype(str)
        if arr.dtype.kind == "u":
            arr = arr.astype(np.int64)
        self.ids = arr
        self._lookup: dict[Any, int] | None = None
        self._sorted: np.ndarray | None = None
        self._order: np.ndarray | None = None
        self._identity: bool | None = None

    @classmethod
    def identity(cls, n: int) -> IdMap:
        """The map whose external ids are the indices themselves (NCF files)."""
        return cls(np.arange(n, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, IdMap)
            and self.ids.dtype.kind == other.ids.dtype.kind
            and np.array_equal(self.ids, other.ids)
        )

    def __repr__(self) -> str:
        return f"IdMap(n={len(self)}, dtype={self.ids.dtype})"

    @property
    def is_identity(self) -> bool:
        return self.ids.dtype.kind == "i" and np.array_equal(self.ids, np.arange(len(self.ids)))

    def _table(self) -> dict[Any, int]:
        if self._lookup is None:
            self._lookup = {k: i for i, k in enumerate(self.ids.tolist())}
        return self._lookup

    def _prepare_ints(self) -> None:
        if self._identity is None:
            self._identity = self.is_identity
        if not self._identity and self._sorted is None:
            self._order = np.argsort(self.ids, kind="stable")
            self._sorted = self.ids[self._order]

    def _search(self, keys: np.ndarray) -> np.ndarray:
        """Indices of integer ``keys`` (int64), -1 for unknown ones."""
        self._prepare_ints()
        n = len(self.ids)
        if self._identity:
            return np.where((keys >= 0) & (keys < n), keys, -1)
        assert self._sorted is not None and self._order is not None  # n > 0: [] is identity
        pos = np.minimum(np.searchsorted(self._sorted, keys), n - 1)
        return np.where(self._sorted[pos] == keys, self._order[pos], -1)

    def _search_one(self, key: int) -> int | None:
        """:meth:`_search` of one key without building arrays (the request path)."""
        self._prepare_ints()
        n = len(self.ids)
        if self._identity:
            return key if 0 <= key < n else None
        assert self._sorted is not None and self._order is not None
        pos = int(self._sorted.searchsorted(key))
        if pos < n and int(self._sorted[pos]) == key:
            return int(self._order[pos])
        return None

    def _coerce(self, external_id: Any) -> Any:
        if self.ids.dtype.kind == "i":
            if isinstance(external_id, str):
                s = external_id.strip()
                # ASCII digits only: int() would also accept "1_000", "+5" and other scripts'
                # digits, which are not how these ids are written.
                if len(s) > _MAX_INT_ID_CHARS or not _INT_ID.fullmatch(s):
                    return None
                return int(s)
            if isinstance(external_id, (int, np.integer)) and not isinstance(external_id, bool):
                return int(external_id)
            return None
        return str(external_id)

    def prepare(self) -> None:
        """Build the lookup structure now (it is otherwise built by the first lookup)."""
        if self.ids.dtype.kind == "i":
            self._prepare_ints()
        else:
            self._table()

    def index(self, external_id: Any) -> int | None:
        """The index of ``external_id``, or None when it is unknown."""
        key = self._coerce(external_id)
        if key is None:
            return None
        if self.ids.dtype.kind == "i":
            if not _INT64.min <= key <= _INT64.max:
                return None
            return self._search_one(key)
        return self._table().get(key)

    def indices(self, external_ids: Iterable[Any]) -> np.ndarray:
        """Indices of many external ids; unknown ids raise ``KeyError``."""
        if self.ids.dtype.kind == "i":
            given = list(external_ids)
            keys = [self._coerce(e) for e in given]
            for e, key in zip(given, keys):
                if key is None or not _INT64.min <= key <= _INT64.max:
                    raise KeyError(e)
            found = self._search(np.asarray(keys, dtype=np.int64).reshape(-1))
            if (found < 0).any():
                raise KeyError(given[int(np.flatnonzero(found < 0)[0])])
            return found.astype(np.int64)
        table = self._table()
        out = []
        for e in external_ids:
            key = self._coerce(e)
            if key is None or key not in table:
                raise KeyError(e)
            out.append(table[key])
        return np.asarray(out, dtype=np.int64)

    def external(self, indices: npt.ArrayLike) -> np.ndarray:
        """External ids of the given indices."""
        return self.ids[np.asarray(indices, dtype=np.int64)]

    def external_list(self, indices: Sequence[int] | np.ndarray) -> list[Any]:
        """External ids as plain Python values (for JSON)."""
        return self.external(indices).tolist()

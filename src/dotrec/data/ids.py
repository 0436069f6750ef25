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


class IdMap:
    """A bijection between external ids (``user_id``/``item_id``) and indices ``0..n-1``.

    External ids are kept as a numpy array (integers, or unicode strings), so that the map can be
    stored in an ``.npz`` artifact without pickling.
    """

    __slots__ = ("ids", "_lookup")

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
        """Build the lookup table now (it is otherwise built by the first lookup)."""
        self._table()

    def index(self, external_id: Any) -> int | None:
        """The index of ``external_id``, or None when it is unknown."""
        key = self._coerce(external_id)
        if key is None:
            return None
        return self._table().get(key)

    def indices(self, external_ids: Iterable[Any]) -> np.ndarray:
        """Indices of many external ids; unknown ids raise ``KeyError``."""
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

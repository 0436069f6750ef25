"""IdMap: lookups by binary search (integer ids) or dict (strings) agree with a plain dict."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dotrec.data.ids import IdMap

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(INT64, unique=True, max_size=40), probes=st.lists(INT64, max_size=20))
def test_integer_lookup_agrees_with_a_dict(ids: list[int], probes: list[int]) -> None:
    m = IdMap(np.asarray(ids, dtype=np.int64))
    ref = {k: i for i, k in enumerate(ids)}
    for key in ids + probes:
        assert m.index(key) == ref.get(key)
        assert m.index(str(key)) == ref.get(key)  # ids arrive as text in URLs
    known = [k for k in probes if k in ref] + ids
    assert m.indices(known).tolist() == [ref[k] for k in known]
    unknown = [k for k in probes if k not in ref]
    if unknown:
        with pytest.raises(KeyError):
            m.indices([*known, unknown[0]])


def test_identity_and_shuffled_maps() -> None:
    ident = IdMap.identity(5)
    assert [ident.index(k) for k in (0, 4, 5, -1, "3", np.int32(2))] == [0, 4, None, None, 3, 2]
    shuffled = IdMap(np.array([40, -7, 12, 9_000_000_000_000]))
    assert shuffled.indices(["12", 40, 9_000_000_000_000, np.int64(-7)]).tolist() == [2, 0, 3, 1]
    assert shuffled.index(13) is None and shuffled.index(41) is None
    empty = IdMap(np.array([], dtype=np.int64))
    assert empty.index(0) is None


def test_text_that_is_not_an_int64_id_is_unknown() -> None:
    m = IdMap(np.array([1, 1000, 5]))
    for bad in ("1_000", "+5", " ", "1.0", "١", "99999999999999999999", "-99999999999999999999"):
        assert m.index(bad) is None, bad
    assert m.index(2**64) is None and m.index(True) is None and m.index(1.0) is None
    with pytest.raises(KeyError):
        m.indices(["99999999999999999999"])


def test_string_ids() -> None:
    m = IdMap(np.array(["b", "a", "10"]))
    assert [m.index(k) for k in ("a", "b", "10", 10, "c")] == [1, 0, 2, 2, None]
    assert m.indices(["10", "a"]).tolist() == [2, 1]
    with pytest.raises(KeyError):
        m.indices(["zz"])

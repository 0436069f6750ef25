"""Readers under fuzzing: every input loads correctly or raises DataError with file and line.

Each case starts from a valid file and applies one or more mutations (truncation, binary
garbage, wrong column counts, non-numeric / negative / huge ids, duplicated or blank lines, CRLF
line ends, non-UTF-8 bytes, an emptied file, a reordered negatives file). The oracle:

* the reader raises :class:`DataError` whose message names the file (and the line, when a
  line is to blame), or
* it returns data whose row count accounts for every data line of the file (interactions plus
  merged duplicates == data lines): nothing is dropped silently.

Any other exception fails the test. ``DOTREC_FUZZ_EXAMPLES`` sets the examples per reader
(default 1000); the counts are printed at the end of the session.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dotrec.data.readers import (
    read_movielens_dat,
    read_ncf,
    read_ratings_csv,
    read_table,
    read_udata,
)
from dotrec.errors import DataError

EXAMPLES = int(os.environ.get("DOTREC_FUZZ_EXAMPLES", "1000"))
#: reader (``read_ncf[test]``: the reader and the file it was given) -> Counter of outcomes
#: ("loaded", "DataError"); printed per reader by conftest's summary hook.
FUZZ_COUNTS: dict[str, Counter[str]] = {}

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)

GARBAGE = st.sampled_from(
    [
        "x",
        "-1",
        "-7",
        "99999999999",
        "1e3",
        "",
        " ",
        "3.5",
        "NaN",
        "\x00",
        "é",
        "１",
        "0x10",
        "\t",
        "::",
        ",",
        "(0,1)",
        "18446744073709551617",
    ]
)


@st.composite
def rows(draw: st.DrawFn, n_cols: int) -> list[list[str]]:
    n = draw(st.integers(1, 25))
    out = []
    for _ in range(n):
        r = [str(draw(st.integers(0, 40))), str(draw(st.integers(0, 60)))]
        if n_cols >= 3:
            r.append(str(draw(st.sampled_from([1, 2, 3, 4, 5, 3.5]))))
        if n_cols >= 4:
            r.append(str(draw(st.integers(0, 10**9))))
        out.append(r)
    return out


@st.composite
def mutated(
    draw: st.DrawFn, base_rows: list[list[str]], sep: str, header: str | None = None
) -> bytes:
    """Serialize rows, then apply 0..3 random mutations at the line, field or byte level."""
    lines = [sep.join(r) for r in base_rows]
    for _ in range(draw(st.integers(0, 3))):
        if not lines:
            break
        kind = draw(
            st.sampled_from(
                [
                    "field",
                    "drop_col",
                    "add_col",
                    "dup",
                    "blank",
                    "swap",
                    "crlf",
                    "truncate",
                    "bytes",
                    "empty",
                    "none",
                ]
            )
        )
        k = draw(st.integers(0, len(lines) - 1))
        if kind == "field":
            parts = lines[k].split(sep)
            j = draw(st.integers(0, len(parts) - 1))
            parts[j] = draw(GARBAGE)
            lines[k] = sep.join(parts)
        elif kind == "drop_col":
            lines[k] = sep.join(lines[k].split(sep)[:-1])
        elif kind == "add_col":
            lines[k] = lines[k] + sep + "7"
        elif kind == "dup":
            lines.insert(k, lines[k])
        elif kind == "blank":
            lines.insert(k, "")
        elif kind == "swap" and len(lines) > 1:
            j = draw(st.integers(0, len(lines) - 1))
            lines[k], lines[j] = lines[j], lines[k]
        elif kind == "crlf":
            lines = [ln + "\r" for ln in lines]
        elif kind == "empty":
            lines = []
    text = "\n".join(([header] if header is not None else []) + lines)
    if lines and draw(st.booleans()):
        text += "\n"
    data = text.encode("utf-8")
    if draw(st.booleans()) and data:
        mode = draw(st.sampled_from(["truncate", "bytes", "latin1"]))
        pos = draw(st.integers(0, len(data)))
        if mode == "truncate":
            data = data[:pos]
        elif mode == "bytes":
            data = data[:pos] + draw(st.binary(min_size=1, max_size=6)) + data[pos:]
        else:
            data = data[:pos] + b"\xe9\xff" + data[pos:]
    return data


def data_lines(data: bytes, header: bool = False) -> int:
    text = data.decode("utf-8")
    lines = text.split("\n")
    while lines and lines[-1] in ("", "\r"):
        lines.pop()
    return len(lines) - (1 if header else 0)


def check(reader_name: str, path: Path, load, expected_rows) -> None:  # type: ignore[no-untyped-def]
    counts = FUZZ_COUNTS.setdefault(reader_name, Counter())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            n_rows = load()
    except DataError as e:
        assert str(path.name) in str(e) or (
            e.path and Path(e.path).name.startswith(path.name.split(".")[0])
        ), f"error does not name the file: {e}"
        if e.line is not None:
            assert re.search(rf":{e.line}: ", str(e)), str(e)
        counts["DataError"] += 1
        return
    counts["loaded"] += 1
    assert n_rows == expected_rows(), f"{reader_name}: loaded {n_rows} rows, expected all lines"


def _plain_reader(name: str, fname: str, sep: str, reader, header: str | None = None):  # type: ignore[no-untyped-def]
    @FUZZ
    @given(data=st.data())
    def test(data: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
        base = data.draw(rows(4))
        raw = data.draw(mutated(base, sep, header))
        path = tmp_path_factory.mktemp(fname) / fname
        path.write_bytes(raw)

        def load() -> int:
            d = reader(path)
            return d.n_interactions + d.n_duplicates_merged

        check(name, path, load, lambda: data_lines(raw, header is not None))

    test.__name__ = f"test_fuzz_{name}"
    return test


test_fuzz_udata = _plain_reader("read_udata", "u.data", "\t", read_udata)
test_fuzz_ratings_dat = _plain_reader("read_movielens_dat", "ratings.dat", "::", read_movielens_dat)
test_fuzz_ratings_csv = _plain_reader(
    "read_ratings_csv",
    "ratings.csv",
    ",",
    read_ratings_csv,
    header="userId,movieId,rating,timestamp",
)


@FUZZ
@given(data=st.data())
def test_fuzz_generic_table(data: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
    base = data.draw(rows(3))
    fmt = data.draw(st.sampled_from(["csv", "tsv", "parquet"]))
    folder = tmp_path_factory.mktemp("table")
    if fmt == "parquet":
        df = pd.DataFrame(base, columns=["u", "i", "r"])
        if data.draw(st.booleans()):
            k = data.draw(st.integers(0, len(df) - 1))
            df.loc[k, data.draw(st.sampled_from(["u", "i", "r"]))] = data.draw(GARBAGE)
        path = folder / "t.parquet"
        df.to_parquet(path)
        raw = path.read_bytes()
        if data.draw(st.booleans()):
            raw = raw[: data.draw(st.integers(0, len(raw)))]
            path.write_bytes(raw)
        expected = lambda: len(df)  # noqa: E731
    else:
        sep = "," if fmt == "csv" else "\t"
        raw = data.draw(mutated(base, sep, header=sep.join(["u", "i", "r"])))
        path = folder / f"t.{fmt}"
        path.write_bytes(raw)
        expected = lambda: data_lines(raw, header=True)  # noqa: E731

    def load() -> int:
        d = read_table(path, user="u", item="i", rating="r")
        return d.n_interactions + d.n_duplicates_merged

    check(f"read_table[{fmt}]", path, load, expected)


@FUZZ
@given(data=st.data())
def test_fuzz_ncf(data: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Mutate one of the three NCF files (train, test, or negatives) of a valid split."""
    n_users = data.draw(st.integers(1, 8))
    train = [[str(u), str(i), "4", str(100 + i)] for u in range(n_users) for i in (0, 1, 2)]
    test = [[str(u), str(3 + u % 2), "5", "999"] for u in range(n_users)]
    negs = [[f"({u},{3 + u % 2})", "7", "8", "9"] for u in range(n_users)]
    target = data.draw(st.sampled_from(["train", "test", "negative"]))
    folder = tmp_path_factory.mktemp("ncf")
    files = {"train": (train, "\t"), "test": (test, "\t"), "negative": (negs, "\t")}
    raw_target = b""
    for key, (rs, sep) in files.items():
        fname = folder / f"toy.{key}.rating" if key != "negative" else folder / "toy.test.negative"
        if key == target:
            if key == "negative" and data.draw(st.booleans()) and len(rs) > 1:
                rs = rs[1:] + rs[:1]  # a negatives file with a different user order
            raw_target = data.draw(mutated(rs, sep))
            fname.write_bytes(raw_target)
        else:
            fname.write_text("\n".join(sep.join(r) for r in rs) + "\n")
    path = folder / (f"toy.{target}.rating" if target != "negative" else "toy.test.negative")

    def load() -> int:
        s = read_ncf(folder / "toy")
        counts = {
            "train": s.train.n_interactions + s.train.n_duplicates_merged,
            "test": s.n_test,
            "negative": s.n_test,
        }
        if target == "negative":
            assert s.test_users.tolist() == list(range(n_users))  # order checked, not assumed
        return counts[target]

    check(f"read_ncf[{target}]", path, load, lambda: data_lines(raw_target))


def test_every_reader_got_its_examples() -> None:
    """Runs after the fuzz tests above (file order): each reader saw EXAMPLES cases or more."""
    if not FUZZ_COUNTS:
        pytest.skip("the fuzz tests were not run in this session")
    totals: Counter[str] = Counter()
    for name, counts in FUZZ_COUNTS.items():
        totals[name.partition("[")[0]] += sum(counts.values())
    assert set(totals) == {
        "read_udata",
        "read_movielens_dat",
        "read_ratings_csv",
        "read_table",
        "read_ncf",
    }
    assert min(totals.values()) >= EXAMPLES, totals

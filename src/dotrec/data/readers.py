"""Readers for interaction files.

Formats: the NCF benchmark files (``NAME.train.rating`` or ``NAME.train.pairs``,
``NAME.test.rating``, ``NAME.test.negative``), MovieLens ``ratings.dat`` (``::``), ``u.data``
(tab), ``ratings.csv`` (header), and any CSV/TSV/Parquet file with named columns.

Every reader either returns exactly what the file holds or raises
:class:`~dotrec.errors.DataError` naming the file, the 1-based line and the problem. Nothing
is skipped: a blank line in the middle of a file is an error, only trailing newlines are not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dotrec.data.interactions import Interactions
from dotrec.errors import DataError

if TYPE_CHECKING:
    from dotrec.data.splits import FileSplit, Split

PathLike = str | os.PathLike[str]
# Ids must fit the int32 indices used everywhere downstream.
MAX_ID = 2**31 - 2


def _read_text(path: PathLike) -> str:
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", p)
    if p.is_dir():
        raise DataError("is a directory, expected a file", p)
    data = p.read_bytes()
    if not data.strip():
        raise DataError("empty file", p)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"not UTF-8 text (byte {e.start})", p, line) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError("NUL byte: binary data, not a text table", p, line)
    return text


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    while lines and lines[-1] in ("", "\r"):
        lines.pop()
    if "\r" not in text:
        return lines
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _parse_int(s: str, what: str, path: PathLike, line: int, max_value: int = MAX_ID) -> int:
    s2 = s.strip()
    if not s2 or not s2.isascii() or not (s2.isdigit() or (s2[0] == "-" and s2[1:].isdigit())):
        raise DataError(f"{what} {s!r} is not an integer", path, line)
    v = int(s2)
    if v < 0:
        raise DataError(f"{what} {v} is negative", path, line)
    if v > max_value:
        raise DataError(f"{what} {v} is out of range (max {max_value})", path, line)
    return v


def _parse_float(s: str, what: str, path: PathLike, line: int) -> float:
    try:
        v = float(s)
    except ValueError:
        raise DataError(f"{what} {s!r} is not a number", path, line) from None
    if not np.isfinite(v):
        raise DataError(f"{what} {s!r} is not finite", path, line)
    return v


@dataclass(frozen=True)
class _Table:
    """Columns of a delimited numeric file: user, item, optional rating and timestamp."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray | None
    timestamp: np.ndarray | None


_INT_MAX_TS = 2**62


def _parse_table(
    path: PathLike,
    sep: str,
    allowed_cols: tuple[int, ...],
    header: bool = False,
    skip_first: int = 0,
) -> _Table:
    """Parse ``user sep item [sep rating [sep timestamp]]`` rows, checking every line.

    ``allowed_cols`` lists acceptable column counts; the first data line fixes the count and
    every other line must match it. Hand-written rather than pandas because we must name the
    exact line of any problem and never let a parser guess (pandas pads short rows with NaN).
    """
    text = _read_text(path)
    lines = _split_lines(text)
    start = 1 if header else 0
    if len(lines) <= start:
        raise DataError("no data rows", path)
    first = lines[start].split(sep)
    ncols = len(first)
    if ncols not in allowed_cols:
        raise DataError(
            f"{ncols} columns, expected {' or '.join(map(str, allowed_cols))} separated by {sep!r}",
            path,
            start + 1,
        )
    fast = _parse_table_fast(lines[start:], sep, ncols) if text.isascii() else None
    if fast is not None:
        return fast
    n = len(lines) - start
    users = np.empty(n, np.int64)
    items = np.empty(n, np.int64)
    ratings = np.empty(n, np.float32) if ncols >= 3 else None
    times = np.empty(n, np.int64) if ncols >= 4 else None
    for k in range(n):
        lineno = start + k + 1
        parts = lines[start + k].split(sep)
        if len(parts) != ncols:
            if len(parts) == 1 and not parts[0].strip():
                raise DataError("blank line", path, lineno)
            raise DataError(
                f"{len(parts)} columns, expected {ncols} like line {start + 1}", path, lineno
            )
        users[k] = _parse_int(parts[0], "user id", path, lineno)
        items[k] = _parse_int(parts[1], "item id", path, lineno)
        if ratings is not None:
            ratings[k] = _parse_float(parts[2], "rating", path, lineno)
        if times is not None:
            times[k] = _parse_int(parts[3], "timestamp", path, lineno, _INT_MAX_TS)
    return _Table(users, items, ratings, times)


def _ascii_uint_column(col: np.ndarray, max_value: int) -> np.ndarray | None:
    """Vectorized int parse of digit strings, or None to fall back to the checked path.

    Callers pass only text already known to be ASCII (so ``isdigit`` means 0-9).
    """
    if not (np.all(np.char.isdigit(col)) and np.all(np.char.str_len(col) <= 18)):
        return None
    vals = col.astype(np.int64)
    if len(vals) and vals.max() > max_value:
        return None
    return vals


def _parse_table_fast(body: list[str], sep: str, ncols: int) -> _Table | None:
    """Vectorized parse of a well-formed ASCII table; None if anything looks off.

    The slow path in :func:`_parse_table` is the reference: it re-reads the file and names the
    first bad line. This path only accepts inputs that the slow path would accept identically.
    """
    if not body:
        return None
    arr = np.array(body)
    if not np.all(np.char.count(arr, sep) == ncols - 1):
        return None
    cells = np.array("\n".join(body).replace(sep, "\n").split("\n"))
    if len(cells) != len(body) * ncols:
        return None
    cells = cells.reshape(len(body), ncols)
    users = _ascii_uint_column(cells[:, 0], MAX_ID)
    items = _ascii_uint_column(cells[:, 1], MAX_ID)
    if users is None or items is None:
        return None
    ratings = times = None
    if ncols >= 3:
        try:
            r = cells[:, 2].astype(np.float64)
        except ValueError:
            return None
        if not np.all(np.isfinite(r)):
            return None
        ratings = r.astype(np.float32)
    if ncols >= 4:
        times = _ascii_uint_column(cells[:, 3], _INT_MAX_TS)
        if times is None:
            return None
    return _Table(users, items, ratings, times)


# ---------------------------------------------------------------------------- NCF files
@dataclass(frozen=True)
class NCFFiles:
    """The three files of an NCF benchmark split (the negatives file is optional)."""

    train: Path
    test: Path
    negatives: Path | None

    @classmethod
    def from_prefix(cls, prefix: PathLike) -> NCFFiles:
        """Locate ``PREFIX.train.rating`` (else ``.train.pairs``), ``.test.rating`` and
        ``.test.negative``."""
        p = str(prefix)
        train = Path(p + ".train.rating")
        if not train.exists():
            pairs = Path(p + ".train.pairs")
            if pairs.exists():
                train = pairs
        neg = Path(p + ".test.negative")
        return cls(train, Path(p + ".test.rating"), neg if neg.exists() else None)


def _parse_negatives(
    path: PathLike, test_users: np.ndarray, test_items: np.ndarray, test_path: PathLike
) -> np.ndarray:
    text = _read_text(path)
    lines = _split_lines(text)
    fast = _parse_negatives_fast(lines, test_users, test_items)
    if fast is not None:
        return fast
    if len(lines) != len(test_users):
        raise DataError(
            f"{len(lines)} lines, but its test file {test_path} has "
            f"{len(test_users)}; the negatives file does not match its test file",
            path,
            min(len(lines), len(test_users)) + 1,
        )
    width = None
    rows: list[list[int]] = []
    for k, raw in enumerate(lines):
        lineno = k + 1
        parts = raw.split("\t")
        head = parts[0].strip()
        if not (head.startswith("(") and head.endswith(")") and head.count(",") == 1):
            raise DataError(
                f"expected '(user,item)' as the first field, got {parts[0]!r:.40}", path, lineno
            )
        u_s, i_s = head[1:-1].split(",")
        u = _parse_int(u_s, "user id", path, lineno)
        i = _parse_int(i_s, "item id", path, lineno)
        if u != test_users[k] or i != test_items[k]:
            raise DataError(
                f"pair ({u},{i}) does not match line {lineno} of {test_path} "
                f"({test_users[k]},{test_items[k]}); the negatives file does not "
                "match its test file",
                path,
                lineno,
            )
        negs = parts[1:]
        if negs and not negs[-1].strip():  # tolerate one trailing tab
            negs = negs[:-1]
        if width is None:
            width = len(negs)
        elif len(negs) != width:
            raise DataError(f"{len(negs)} negatives, expected {width} like line 1", path, lineno)
        rows.append([_parse_int(s, "negative item id", path, lineno) for s in negs])
    return np.asarray(rows, dtype=np.int64).reshape(len(lines), width or 0)


def _parse_negatives_fast(
    lines: list[str], test_users: np.ndarray, test_items: np.ndarray
) -> np.ndarray | None:
    """Vectorized parse of a well-formed negatives file; None sends it to the checked path."""
    if len(lines) != len(test_users) or not lines:
        return None
    heads, rests = [], []
    for line in lines:
        head, _, rest = line.partition("\t")
        heads.append(head)
        rests.append(rest)
    expected = [f"({u},{i})" for u, i in zip(test_users.tolist(), test_items.tolist())]
    if heads != expected:
        return None
    width = rests[0].count("\t") + 1 if rests[0] else 0
    if width == 0 or any(r.count("\t") != width - 1 for r in rests):
        return None
    if not all(r.isascii() for r in rests):  # 6k lines: cheap
        return None
    cells = np.array("\t".join(rests).split("\t"))
    vals = _ascii_uint_column(cells, MAX_ID)
    return None if vals is None else vals.reshape(len(lines), width)


def read_ncf(prefix: PathLike, *, name: str | None = None) -> Split:
    """Read an NCF split into a :class:`~dotrec.data.splits.Split`.

    Ids are the files' 0-based ids (identity id maps). The item universe is every id seen in
    any of the three files. Checks: consistent columns, one test line per user with no user
    twice, test pair not in train, negatives file line-aligned with the test file.
    """
    from dotrec.data.splits import Split

    files = NCFFiles.from_prefix(prefix)
    train = _parse_table(files.train, "\t", (2, 3, 4))
    test = _parse_table(files.test, "\t", (2, 3, 4))
    dup = np.flatnonzero(np.diff(np.sort(test.user)) == 0)
    if len(dup):
        u = np.sort(test.user)[dup[0]]
        line = int(np.flatnonzero(test.user == u)[1]) + 1
        raise DataError(
            f"user {u} has a second test line; leave-one-out needs one", files.test, line
        )
    negatives = (
        None
        if files.negatives is None
        else _parse_negatives(files.negatives, test.user, test.item, files.test)
    )
    n_users = int(max(train.user.max(), test.user.max()) + 1)
    n_items = int(
        max(
            train.item.max(),
            test.item.max(),
            negatives.max() if negatives is not None and negatives.size else -1,
        )
        + 1
    )
    train_keys = np.sort(train.user * n_items + train.item)
    test_keys = test.user * n_items + test.item
    pos = np.minimum(np.searchsorted(train_keys, test_keys), len(train_keys) - 1)
    clash = train_keys[pos] == test_keys
    if clash.any():
        k = int(np.flatnonzero(clash)[0])
        raise DataError(
            f"test pair ({test.user[k]},{test.item[k]}) is also in the training file {files.train}",
            files.test,
            k + 1,
        )
    inter = Interactions.from_indices(
        train.user,
        train.item,
        n_users=n_users,
        n_items=n_items,
        timestamps=train.timestamp,
        ratings=train.rating,
        source=str(files.train),
    )
    if negatives is None:
        negatives = np.zeros((len(test.user), 0), dtype=np.int64)
    return Split(
        train=inter,
        test_users=test.user,
        test_items=test.item,
        negatives=negatives,
        name=name or Path(str(prefix)).name,
    )


# ---------------------------------------------------------------------------- raw ratings
def read_movielens_dat(path: PathLike) -> Interactions:
    """MovieLens ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``."""
    t = _parse_table(path, "::", (4,))
    return Interactions.from_ids(
        t.user, t.item, timestamps=t.timestamp, ratings=t.rating, source=str(path)
    )


def read_udata(path: PathLike) -> Interactions:
    """MovieLens 100K ``u.data``: ``user \\t item \\t rating \\t timestamp``."""
    t = _parse_table(path, "\t", (4,))
    return Interactions.from_ids(
        t.user, t.item, timestamps=t.timestamp, ratings=t.rating, source=str(path)
    )


def read_ratings_csv(path: PathLike) -> Interactions:
    """MovieLens ``ratings.csv`` (``userId,movieId,rating,timestamp`` with a header)."""
    text_head = _read_text(path).split("\n", 1)[0].strip().lower()
    cols = [c.strip() for c in text_head.split(",")]
    if cols[:2] != ["userid", "movieid"]:
        raise DataError(f"header {text_head!r:.60} does not start with userId,movieId", path, 1)
    t = _parse_table(path, ",", (4,), header=True)
    return Interactions.from_ids(
        t.user, t.item, timestamps=t.timestamp, ratings=t.rating, source=str(path)
    )


def read_table(
    path: PathLike,
    *,
    user: str,
    item: str,
    timestamp: str | None = None,
    rating: str | None = None,
    sep: str | None = None,
) -> Interactions:
    """Any CSV/TSV/Parquet file with a header, given the names of its columns.

    Ids may be integers or strings; indices follow the order of first appearance. A missing
    column, an empty id or timestamp, or a non-integer timestamp is an error naming the row
    (1-based file line, counting the header as line 1, for text files).
    """
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise DataError("file not found", p)
    wanted = [c for c in (user, item, timestamp, rating) if c is not None]
    suffix = p.suffix.lower()
    is_parquet = suffix in (".parquet", ".pq")
    try:
        if is_parquet:
            df = pd.read_parquet(p)
        else:
            _read_text(p)  # empty / binary / encoding checks with line numbers
            if sep is None:
                sep = "\t" if suffix in (".tsv", ".tab") else ","
            df = pd.read_csv(
                p,
                sep=sep,
                dtype=str,
                keep_default_na=False,
                skip_blank_lines=False,
                engine="c",
                on_bad_lines="error",
            )
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - pandas/pyarrow raise many types; re-raise as ours
        raise DataError(f"cannot parse: {e}".splitlines()[0], p) from None
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(map(repr, missing))}; "
            f"file has {', '.join(map(str, df.columns))}",
            p,
            None if is_parquet else 1,
        )
    if len(df) == 0:
        raise DataError("no data rows", p)

    def line_of(row: int) -> int | None:
        return None if is_parquet else row + 2

    def col_ids(name: str) -> np.ndarray:
        s = df[name]
        bad = s.isna() | (s.astype(str).str.strip() == "")
        if bad.any():
            r = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"empty {name!r}", p, line_of(r))
        vals = s.to_numpy()
        if vals.dtype.kind in "iu":
            return vals.astype(np.int64)
        if vals.dtype.kind == "f":
            if not np.all(np.mod(vals, 1) == 0):
                r = int(np.flatnonzero(np.mod(vals, 1) != 0)[0])
                raise DataError(f"{name!r} value {vals[r]} is not an integer id", p, line_of(r))
            return vals.astype(np.int64)
        return s.astype(str).str.strip().to_numpy().astype(str)

    def col_num(name: str, integer: bool) -> np.ndarray:
        s = df[name]
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna() | ~np.isfinite(num.to_numpy(dtype=float, na_value=np.nan))
        if integer:
            bad |= np.mod(num.fillna(0).to_numpy(dtype=float), 1) != 0
        if bad.any():
            r = int(np.flatnonzero(bad.to_numpy())[0])
            kind = "an integer" if integer else "a number"
            raise DataError(f"{name!r} value {s.iloc[r]!r:.40} is not {kind}", p, line_of(r))
        return num.to_numpy(dtype=np.int64 if integer else np.float32)

    return Interactions.from_ids(
        col_ids(user),
        col_ids(item),
        timestamps=None if timestamp is None else col_num(timestamp, True),
        ratings=None if rating is None else col_num(rating, False),
        source=str(p),
    )


def read_ratings_file(path: PathLike, fmt: str | None = None) -> Interactions:
    """Read a raw ratings file, choosing the reader from ``fmt`` or the file's name."""
    p = Path(path)
    fmt = fmt or {"ratings.dat": "dat", "u.data": "udata", "ratings.csv": "csv"}.get(p.name)
    if fmt is None:
        if p.suffix.lower() == ".dat":
            fmt = "dat"
        else:
            raise DataError(
                "cannot tell the format from the file name; pass --format "
                "dat|udata|csv (or read_table for other tables)",
                p,
            )
    readers = {"dat": read_movielens_dat, "udata": read_udata, "csv": read_ratings_csv}
    if fmt not in readers:
        raise DataError(f"unknown format {fmt!r}; expected one of {', '.join(readers)}", p)
    return readers[fmt](p)


def _parse_user_items_fast(text: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Vectorised parse of a well-formed user-items text; None sends it to the checked path
    (which names the file and line of the first problem)."""
    if not text.isascii():
        return None
    counts = np.array([len(line.split()) for line in text.split("\n")], dtype=np.int64)
    counts = counts[counts > 0]
    try:
        flat = np.array(text.split(), dtype=np.int64)
    except (ValueError, OverflowError):
        return None
    if not len(counts) or flat.min() < 0 or flat.max() > MAX_ID:
        return None
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    user_of_line = flat[starts]
    if _has_repeats(user_of_line):
        return None
    is_item = np.ones(len(flat), dtype=bool)
    is_item[starts] = False
    users = np.repeat(user_of_line, counts - 1)
    items = flat[is_item]
    if _has_repeats(users * (int(items.max(initial=0)) + 1) + items):
        return None
    return users, items


def _has_repeats(a: np.ndarray) -> bool:
    """Whether any value occurs twice (a sort: numpy's hash-based unique is slower here)."""
    b = np.sort(a)
    return bool((b[1:] == b[:-1]).any())


def parse_user_items(text: str, path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of a user-items text: one line per user, ``USER ITEM ITEM ...``,
    space separated (the NGCF / LightGCN ``train.txt`` / ``test.txt`` layout).

    Checks: every token a non-negative integer, no user on two lines, no item twice in a
    line. Blank lines are skipped; a line with a user and no item is a user without items.
    """
    fast = _parse_user_items_fast(text)
    if fast is not None:
        return fast
    users: list[np.ndarray] = []
    items: list[np.ndarray] = []
    seen: dict[int, int] = {}
    for n, line in enumerate(_split_lines(text), 1):
        tokens = line.split()
        if not tokens:
            continue
        if line.isascii() and all(t.isdigit() for t in tokens):
            values = np.array(tokens, dtype=np.int64)
        else:
            values = np.array([_parse_int(t, "id", path, n) for t in tokens], dtype=np.int64)
        if values.max() > MAX_ID:
            raise DataError(f"id {int(values.max())} is out of range (max {MAX_ID})", path, n)
        user = int(values[0])
        if user in seen:
            raise DataError(f"user {user} again (first on line {seen[user]})", path, n)
        seen[user] = n
        row = values[1:]
        if _has_repeats(row):
            ordered = np.sort(row)
            dup = int(ordered[1:][ordered[1:] == ordered[:-1]][0])
            raise DataError(f"item {dup} twice for user {user}", path, n)
        users.append(np.full(len(row), user, dtype=np.int64))
        items.append(row)
    if not seen:
        raise DataError("no user lines", path)
    return np.concatenate(users), np.concatenate(items)


def read_user_items(train: PathLike, test: PathLike, *, name: str | None = None) -> FileSplit:
    """Read a train/test pair of user-items files (see :func:`parse_user_items`) as a
    :class:`~dotrec.data.splits.FileSplit`: the test set is the test file, any number of items
    per user. Ids are the files' indices (identity id maps); the catalog is every item id seen
    in either file. A test pair that is also a training pair is an error."""
    from dotrec.data.splits import FileSplit

    tu, ti = parse_user_items(_read_text(train), train)
    su, si = parse_user_items(_read_text(test), test)
    n_users = int(max(tu.max(initial=-1), su.max(initial=-1))) + 1
    n_items = int(max(ti.max(initial=-1), si.max(initial=-1))) + 1
    # pairs are unique within each file (checked above), so the merge needs no unique pass
    overlap = np.intersect1d(tu * n_items + ti, su * n_items + si, assume_unique=True)
    if len(overlap):
        u, i = divmod(int(overlap[0]), n_items)
        raise DataError(f"test pair (user {u}, item {i}) is also a training pair", test)

    def build(u: np.ndarray, i: np.ndarray, source: PathLike) -> Interactions:
        return Interactions.from_indices(
            u, i, n_users=n_users, n_items=n_items, source=str(source), warn_duplicates=False
        )

    return FileSplit(
        build(tu, ti, train), build(su, si, test), name=name or Path(train).parent.name
    )

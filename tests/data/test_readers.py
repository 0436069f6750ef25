"""Readers: round trips and every bad-input case named in the foundation issue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dotrec.data.readers import (
    read_movielens_dat,
    read_ncf,
    read_ratings_csv,
    read_ratings_file,
    read_table,
    read_udata,
)
from dotrec.errors import DataError


def write_ncf(tmp: Path, train: str, test: str, neg: str | None, name: str = "toy") -> Path:
    (tmp / f"{name}.train.rating").write_text(train)
    (tmp / f"{name}.test.rating").write_text(test)
    if neg is not None:
        (tmp / f"{name}.test.negative").write_text(neg)
    return tmp / name


TRAIN = "0\t0\t5\t100\n0\t1\t3\t90\n1\t1\t4\t50\n1\t2\t2\t40\n"
TEST = "0\t2\t4\t200\n1\t0\t5\t60\n"
NEG = "(0,2)\t3\t4\n(1,0)\t3\t4\n"


def test_ncf_round_trip(tmp_path: Path) -> None:
    s = read_ncf(write_ncf(tmp_path, TRAIN, TEST, NEG))
    assert s.n_users == 2 and s.n_items == 5
    assert s.train.n_interactions == 4
    assert s.test_users.tolist() == [0, 1] and s.test_items.tolist() == [2, 0]
    assert s.negatives.tolist() == [[3, 4], [3, 4]]
    assert s.train.timestamps is not None and s.train.ratings is not None
    assert sorted(zip(s.train.user_index.tolist(), s.train.item_index.tolist())) == [
        (0, 0),
        (0, 1),
        (1, 1),
        (1, 2),
    ]


def test_ncf_two_column_pairs_file(tmp_path: Path) -> None:
    (tmp_path / "p.train.pairs").write_text("0\t0\n0\t1\n1\t1\n")
    (tmp_path / "p.test.rating").write_text("0\t2\t4\t200\n1\t0\t5\t60\n")
    (tmp_path / "p.test.negative").write_text("(0,2)\t3\n(1,0)\t3\n")
    s = read_ncf(tmp_path / "p")
    assert s.train.n_interactions == 3 and s.train.timestamps is None


def test_ncf_crlf_line_ends(tmp_path: Path) -> None:
    s = read_ncf(
        write_ncf(
            tmp_path,
            TRAIN.replace("\n", "\r\n"),
            TEST.replace("\n", "\r\n"),
            NEG.replace("\n", "\r\n"),
        )
    )
    assert s.train.n_interactions == 4 and s.negatives.shape == (2, 2)


@pytest.mark.parametrize(
    "train,test,neg,where,problem",
    [
        ("0\t0\t5\t100\n0\tx\t3\t90\n", TEST, NEG, "toy.train.rating:2", "not an integer"),
        ("0\t0\t5\t100\n0\t1\t3\n", TEST, NEG, "toy.train.rating:2", "3 columns"),
        ("", TEST, NEG, "toy.train.rating", "empty file"),
        ("0\t0\t5\t100\n\n0\t1\t3\t90\n", TEST, NEG, "toy.train.rating:2", "blank line"),
        ("0\t-1\t5\t100\n", TEST, NEG, "toy.train.rating:1", "negative"),
        ("0\t99999999999\t5\t100\n", TEST, NEG, "toy.train.rating:1", "out of range"),
        (TRAIN, TEST, "(0,2)\t3\t4\n(1,1)\t3\t4\n", "toy.test.negative:2", "does not match"),
        (TRAIN, TEST, "(0,2)\t3\t4\n", "toy.test.negative", "does not match its test file"),
        (TRAIN, TEST, "(0,2)\t3\t4\n(1,0)\t3\n", "toy.test.negative:2", "1 negatives"),
        (TRAIN, TEST, "0,2\t3\t4\n(1,0)\t3\t4\n", "toy.test.negative:1", "(user,item)"),
        (TRAIN, "0\t2\t4\t200\n0\t3\t5\t60\n", NEG, "toy.test.rating:2", "second test line"),
        (
            TRAIN,
            "0\t1\t4\t200\n1\t0\t5\t60\n",
            "(0,1)\t3\t4\n(1,0)\t3\t4\n",
            "toy.test.rating:1",
            "also in the training",
        ),
        ("0\t0\t5\tnan\n", TEST, NEG, "toy.train.rating:1", "timestamp"),
    ],
)
def test_ncf_bad_input(
    tmp_path: Path, train: str, test: str, neg: str, where: str, problem: str
) -> None:
    with pytest.raises(DataError) as e:
        read_ncf(write_ncf(tmp_path, train, test, neg))
    assert where in str(e.value) and problem in str(e.value)


def test_non_utf8_and_binary(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_bytes(b"1\t2\t3\t4\n1\t\xff\t3\t4\n")
    with pytest.raises(DataError, match=r"u.data:2: not UTF-8"):
        read_udata(tmp_path / "u.data")
    (tmp_path / "u.data").write_bytes(b"1\t2\t3\t4\n\x00\x01\x02\n")
    with pytest.raises(DataError, match=r"u.data:2: NUL byte"):
        read_udata(tmp_path / "u.data")


def test_movielens_formats(tmp_path: Path) -> None:
    (tmp_path / "ratings.dat").write_text(
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978300000\n"
    )
    d = read_movielens_dat(tmp_path / "ratings.dat")
    assert (d.n_users, d.n_items, d.n_interactions) == (2, 2, 3)
    assert d.users.ids.tolist() == [1, 2] and d.items.ids.tolist() == [1193, 661]
    (tmp_path / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    assert read_udata(tmp_path / "u.data").n_interactions == 2
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,9\n1,3,4.5,8\n")
    c = read_ratings_csv(tmp_path / "ratings.csv")
    assert c.ratings is not None and c.ratings.tolist() == [4.0, 4.5]
    assert read_ratings_file(tmp_path / "ratings.csv").n_interactions == 2
    (tmp_path / "bad.csv").write_text("user,item\n1,2\n")
    with pytest.raises(DataError, match="header"):
        read_ratings_csv(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="--format"):
        read_ratings_file(tmp_path / "bad.csv")


def test_duplicates_merged_with_warning(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t2\t3\t10\n1\t2\t5\t20\n1\t3\t1\t5\n")
    with pytest.warns(UserWarning, match="merged 1 duplicate"):
        d = read_udata(tmp_path / "u.data")
    assert d.n_interactions == 2 and d.n_duplicates_merged == 1
    # the latest row of the pair is kept, with its rating
    row = int(np.flatnonzero(d.items.ids[d.item_index] == 2)[0])
    assert d.timestamps[row] == 20 and d.ratings[row] == 5


def test_generic_tables(tmp_path: Path) -> None:
    df = pd.DataFrame({"who": ["a", "b", "a"], "what": ["x", "x", "y"], "ts": [3, 2, 1]})
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_csv(tmp_path / "t.tsv", index=False, sep="\t")
    df.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.tsv", "t.parquet"):
        d = read_table(tmp_path / name, user="who", item="what", timestamp="ts")
        assert d.users.ids.tolist() == ["a", "b"] and d.items.ids.tolist() == ["x", "y"]
        assert d.n_interactions == 3 and sorted(d.timestamps.tolist()) == [1, 2, 3]
    with pytest.raises(DataError, match=r"t.csv:1: missing column\(s\) 'user'"):
        read_table(tmp_path / "t.csv", user="user", item="what")
    (tmp_path / "bad.csv").write_text("who,what,ts\na,x,1\nb,y,soon\n")
    with pytest.raises(DataError, match=r"bad.csv:3: 'ts' value 'soon' is not an integer"):
        read_table(tmp_path / "bad.csv", user="who", item="what", timestamp="ts")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty file"):
        read_table(tmp_path / "empty.csv", user="who", item="what")
    (tmp_path / "hole.csv").write_text("who,what\na,x\n,y\n")
    with pytest.raises(DataError, match=r"hole.csv:3: empty 'who'"):
        read_table(tmp_path / "hole.csv", user="who", item="what")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_udata(tmp_path / "nope")


def test_fast_and_checked_paths_agree(tmp_path: Path) -> None:
    # A clean file goes through the vectorized path; inserting one odd-but-valid cell (spaces)
    # forces the checked path. Both must give the same interactions.
    rows = [f"{u}\t{i}\t{(u + i) % 5 + 1}\t{1000 - u - i}" for u in range(20) for i in range(5)]
    (tmp_path / "a.data").write_text("\n".join(rows) + "\n")
    rows[7] = rows[7].replace("\t", " \t", 1)
    (tmp_path / "b.data").write_text("\n".join(rows) + "\n")
    a, b = read_udata(tmp_path / "a.data"), read_udata(tmp_path / "b.data")
    np.testing.assert_array_equal(a.user_index, b.user_index)
    np.testing.assert_array_equal(a.item_index, b.item_index)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    np.testing.assert_array_equal(a.ratings, b.ratings)


def test_user_items_files_read_as_a_file_split(tmp_path: Path) -> None:
    from dotrec.data.readers import read_user_items

    (tmp_path / "train.txt").write_text("0 3 1 2\n1 0\n2 4 5\n")
    (tmp_path / "test.txt").write_text("0 4\n1 2 3\n2 0\n")
    s = read_user_items(tmp_path / "train.txt", tmp_path / "test.txt", name="tiny")
    assert (s.n_users, s.n_items, len(s.train), len(s.test)) == (3, 6, 6, 4)
    assert s.train.items_of(0).tolist() == [1, 2, 3] and s.test.items_of(1).tolist() == [2, 3]
    assert s.test_users.tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("train", "test", "message"),
    [
        ("0 1 2\n1 x\n", "0 3\n", r"train.txt:2: id 'x' is not an integer"),
        ("0 1 2\n0 3\n", "0 4\n", r"train.txt:2: user 0 again \(first on line 1\)"),
        ("0 1 2 1\n", "0 4\n", r"train.txt:1: item 1 twice for user 0"),
        ("0 1 2\n", "0 2\n", r"test.txt: test pair \(user 0, item 2\) is also a training pair"),
        ("0 1 -2\n", "0 3\n", r"train.txt:1: id '-2'|train.txt:1: id -2 is negative"),
    ],
)
def test_user_items_errors_name_file_and_line(
    tmp_path: Path, train: str, test: str, message: str
) -> None:
    from dotrec.data.readers import read_user_items

    (tmp_path / "train.txt").write_text(train)
    (tmp_path / "test.txt").write_text(test)
    with pytest.raises(DataError, match=message):
        read_user_items(tmp_path / "train.txt", tmp_path / "test.txt")

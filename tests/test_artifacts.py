"""Artifacts: atomic writes, sha256 verification, version and shape checks, no pickle."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from dotrec.artifacts import (
    FORMAT_VERSION,
    atomic_write_bytes,
    load_artifact,
    save_artifact,
    sha256_file,
)
from dotrec.errors import ArtifactError
from dotrec.models import MatrixFactorization, load_model, load_seen
from dotrec.recommend import _memory_mapped
from tests.conftest import planted_split


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    split = planted_split()
    m = MatrixFactorization(embedding_dim=4, epochs=2, threads=1).fit(split.train)
    m.save(tmp_path / "m", dataset="planted", train=split.train)
    return tmp_path / "m"


def test_round_trip_and_seen(saved: Path) -> None:
    m = load_model(saved)
    seen = load_seen(saved)
    assert seen is not None and seen.n_users == m.n_users and seen.n_items == m.n_items
    assert seen.fingerprint() == m.train_fingerprint


def test_altered_arrays_detected(saved: Path) -> None:
    data = bytearray((saved / "arrays.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (saved / "arrays.npz").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_model(saved)


def test_truncated_arrays_detected(saved: Path) -> None:
    (saved / "arrays.npz").write_bytes((saved / "arrays.npz").read_bytes()[:100])
    with pytest.raises(ArtifactError, match="truncated or was altered"):
        load_model(saved)


def test_mmap_maps_every_array_read_only(saved: Path) -> None:
    meta, read = load_artifact(saved)
    meta_m, mapped = load_artifact(saved, mmap=True)
    assert meta_m == meta and mapped.keys() == read.keys()
    for name, arr in read.items():
        m = mapped[name]
        assert m.dtype == arr.dtype and m.shape == arr.shape and np.array_equal(m, arr)
        if arr.size:
            assert _memory_mapped(m) and not m.flags.writeable
    model = load_model(saved, mmap=True)
    assert _memory_mapped(model.item_factors)
    with pytest.raises(ValueError, match="read-only"):
        model.item_factors[0, 0] = 1.0
    np.testing.assert_array_equal(model.score_all([0, 1]), load_model(saved).score_all([0, 1]))


def test_mmap_refuses_a_compressed_archive(saved: Path) -> None:
    with np.load(saved / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files}
    np.savez_compressed(saved / "arrays.npz", **arrays)
    meta = json.loads((saved / "model.json").read_text())
    meta["arrays"]["sha256"] = sha256_file(saved / "arrays.npz")
    (saved / "model.json").write_text(json.dumps(meta))
    load_model(saved)  # readable as such
    with pytest.raises(ArtifactError, match="compressed and cannot be memory-mapped"):
        load_model(saved, mmap=True)


def test_newer_format_version_refused(saved: Path) -> None:
    meta = json.loads((saved / "model.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (saved / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="newer than this dotrec"):
        load_model(saved)


def test_shape_mismatch_detected(saved: Path) -> None:
    meta = json.loads((saved / "model.json").read_text())
    meta["dataset"]["n_users"] += 1
    (saved / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="do not match"):
        load_model(saved)


def test_not_a_model_dir(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such model directory"):
        load_model(tmp_path / "nothing")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "model.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_model(tmp_path / "d")


def test_object_arrays_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="never pickle"):
        save_artifact(tmp_path / "x", {}, {"a": np.array([{"x": 1}], dtype=object)})
    assert not (tmp_path / "x").exists()


def test_failed_write_keeps_the_old_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_artifact(tmp_path / "a", {"v": 1}, {"x": np.arange(3)})

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("dotrec.artifacts.json.dump", boom)
    with pytest.raises(OSError):
        save_artifact(tmp_path / "a", {"v": 2}, {"x": np.arange(5)})
    meta, arrays = load_artifact(tmp_path / "a")
    assert meta["v"] == 1 and arrays["x"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no temp directories left


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_paths_get_the_umask_mode(tmp_path: Path, umask: int) -> None:
    """Atomic writes give what plain ``open``/``mkdir`` would, not the private temp modes
    (0600 / 0700), so a model saved by one user can be served by another."""
    old = os.umask(umask)
    try:
        save_artifact(tmp_path / "m", {"v": 1}, {"x": np.arange(3)})
        atomic_write_bytes(tmp_path / "f.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o777 & ~umask
    for f in [tmp_path / "f.json", *(tmp_path / "m").iterdir()]:
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f.name


def test_replacement_swaps_in_one_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replacement never passes through a state without an artifact at the path.

    Every rename dotrec makes is recorded, and after each one the target must hold a complete
    artifact; on Linux the swap is one ``renameat2(RENAME_EXCHANGE)`` and no rename is needed.
    """
    import os

    import dotrec.artifacts as art

    target = tmp_path / "a"
    save_artifact(target, {"v": 1}, {"x": np.arange(3)})
    states: list[bool] = []
    real_rename = os.rename

    def rename(src: object, dst: object) -> None:
        real_rename(src, dst)  # type: ignore[arg-type]
        states.append((target / "model.json").is_file())

    monkeypatch.setattr(art.os, "rename", rename)
    save_artifact(target, {"v": 2}, {"x": np.arange(5)})
    (tmp_path / "p1").mkdir()
    (tmp_path / "p2").mkdir()
    if art._exchange(tmp_path / "p1", tmp_path / "p2"):  # this file system swaps atomically
        assert states == []  # exchanged, not renamed
    (tmp_path / "p1").rmdir()
    (tmp_path / "p2").rmdir()
    assert all(states)
    meta, arrays = load_artifact(target)
    assert meta["v"] == 2 and arrays["x"].tolist() == [0, 1, 2, 3, 4]
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_exchange_swaps_two_directories(tmp_path: Path) -> None:
    from dotrec.artifacts import _exchange

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("A")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "f").write_text("B")
    if not _exchange(tmp_path / "a", tmp_path / "b"):
        pytest.skip("no atomic exchange here (renameat2 is Linux only); the fallback is below")
    assert (tmp_path / "a" / "f").read_text() == "B"
    assert (tmp_path / "b" / "f").read_text() == "A"


def test_fallback_crash_between_renames_is_recovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an atomic exchange the old artifact is renamed aside first; a crash right
    after that rename leaves it aside, and the next write or resume puts it back."""
    import os

    import dotrec.artifacts as art

    target = tmp_path / "a"
    save_artifact(target, {"v": 1}, {"x": np.arange(3)})
    monkeypatch.setattr(art, "_exchange", lambda a, b: False)
    real_rename = os.rename
    calls = []

    def crash_on_second(src: object, dst: object) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies between the two renames
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(art.os, "rename", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        save_artifact(target, {"v": 2}, {"x": np.arange(5)})
    monkeypatch.setattr(art.os, "rename", real_rename)
    assert not target.exists()
    assert [p.name.startswith(".a.old-") for p in tmp_path.iterdir()] == [True]
    art.recover_dir(target, art.META_FILE, art.FORMAT)
    meta, arrays = load_artifact(target)
    assert meta["v"] == 1 and arrays["x"].tolist() == [0, 1, 2]
    save_artifact(target, {"v": 3}, {"x": np.arange(2)})  # the fallback path completes
    assert load_artifact(target)[0]["v"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_recover_leaves_foreign_directories(tmp_path: Path) -> None:
    import dotrec.artifacts as art

    (tmp_path / ".a.old-1").mkdir()
    (tmp_path / ".a.old-1" / "model.json").write_text('{"format": "something-else"}')
    art.recover_dir(tmp_path / "a", art.META_FILE, art.FORMAT)
    assert not (tmp_path / "a").exists()

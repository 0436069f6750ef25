"""Artifacts: atomic writes, sha256 verification, version and shape checks, no pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dotrec.artifacts import FORMAT_VERSION, load_artifact, save_artifact
from dotrec.errors import ArtifactError
from dotrec.models import MatrixFactorization, load_model, load_seen
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

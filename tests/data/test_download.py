"""`dotrec data download` against a local HTTP server (never the internet)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import dotrec.data.registry as registry
from dotrec.data.download import DownloadError, download, verify_checksum
from dotrec.data.registry import DATASETS, DatasetSpec, RemoteFile


@pytest.fixture
def serve_dir() -> Iterator[callable]:
    servers = []

    def start(root: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
        handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()


def test_download_from_local_mirror_of_shared_data(
    serve_dir, data_dir: Path, tmp_path: Path
) -> None:
    url = serve_dir(data_dir)
    paths = download("ml-100k", tmp_path, mirror=url)
    assert [p.name for p in paths] == ["u.data"]
    assert (tmp_path / "ml-100k" / "u.data").read_bytes() == (
        data_dir / "ml-100k" / "u.data"
    ).read_bytes()
    # the NCF test files verify by their recorded sha256
    spec = DATASETS["ml-1m"]
    test_rf = next(rf for rf in spec.files if rf.name == "ml-1m.test.rating")
    data = (data_dir / "ml-1m" / "ml-1m.test.rating").read_bytes()
    assert verify_checksum(data, test_rf.checksum) is None


def test_zip_member_extraction_and_checksum_failure(
    serve_dir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = b"1\t2\t3\t4\n"
    root = tmp_path / "www"
    root.mkdir()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("toy/u.data", payload)
    (root / "toy.zip").write_bytes(buf.getvalue())
    url = serve_dir(root)
    good = DatasetSpec(
        "toy",
        "raw",
        "toy",
        (
            RemoteFile(
                "u.data",
                f"{url}/toy.zip",
                "sha256:" + hashlib.sha256(payload).hexdigest(),
                member="toy/u.data",
            ),
        ),
        raw_file="u.data",
    )
    monkeypatch.setitem(registry.DATASETS, "toy", good)
    out = tmp_path / "data"
    download("toy", out)
    assert (out / "toy" / "u.data").read_bytes() == payload
    # a wrong checksum writes nothing and keeps the good file
    bad = DatasetSpec(
        "toy",
        "raw",
        "toy",
        (RemoteFile("u.data", f"{url}/toy.zip", "sha256:" + "0" * 64, member="toy/u.data"),),
        raw_file="u.data",
    )
    monkeypatch.setitem(registry.DATASETS, "toy", bad)
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download("toy", out, force=True)
    assert (out / "toy" / "u.data").read_bytes() == payload
    assert [p.name for p in (out / "toy").iterdir()] == ["u.data"]  # no temp files left


def test_unreachable_server_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = DatasetSpec(
        "toy",
        "raw",
        "toy",
        (RemoteFile("u.data", "http://127.0.0.1:9/x", None),),
        raw_file="u.data",
    )
    monkeypatch.setitem(registry.DATASETS, "toy", spec)
    with pytest.raises(DownloadError, match="download failed"):
        download("toy", tmp_path)


def test_gitblob_checksum() -> None:
    data = b"hello\n"
    # `git hash-object` of "hello\n"
    assert verify_checksum(data, "gitblob:ce013625030ba8dba906f756967f9e9ca394464a") is None
    assert verify_checksum(data, "gitblob:" + "1" * 40) is not None


@pytest.mark.realdata
def test_gowalla_downloads_and_verifies_by_its_pairs(
    serve_dir, data_dir: Path, tmp_path: Path
) -> None:
    # A mirror serving the lines in another order still verifies: the checksum is of the
    # sorted pairs (PROVENANCE.md of the data); a changed pair does not.
    root = tmp_path / "www" / "gowalla"
    root.mkdir(parents=True)
    for name in ("train.txt", "test.txt"):
        lines = (data_dir / "gowalla" / name).read_text().splitlines()
        shuffled = [" ".join([ln.split()[0], *reversed(ln.split()[1:])]) for ln in lines[::-1]]
        (root / name).write_text("\n".join(shuffled) + "\n")
    paths = download("gowalla", tmp_path / "data", mirror=f"{serve_dir(tmp_path / 'www')}")
    assert sorted(p.name for p in paths) == ["test.txt", "train.txt"]
    text = (root / "test.txt").read_text()
    first = text.split("\n", 1)[0].split()
    broken = " ".join([first[0], str(int(first[1]) + 1), *first[2:]])
    (root / "test.txt").write_text(text.replace(" ".join(first), broken, 1))
    with pytest.raises(DownloadError, match="checksum mismatch for test.txt"):
        download("gowalla", tmp_path / "data2", mirror=f"{serve_dir(tmp_path / 'www')}")
    assert not (tmp_path / "data2" / "gowalla" / "test.txt").exists()

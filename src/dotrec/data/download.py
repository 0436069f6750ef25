"""``dotrec data download``: fetch a registered dataset's public files, checked and atomic.

Each file is streamed to a temporary file, verified against its recorded checksum (sha256, or
the upstream git blob id), extracted from its zip archive where needed, and only then renamed
into ``DATA_DIR/NAME/``. A failed or interrupted download never leaves a partial file in place.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dotrec.artifacts import atomic_write_bytes
from dotrec.data.readers import parse_user_items
from dotrec.data.registry import DATASETS, RemoteFile, dataset_path
from dotrec.errors import DataError, DotrecError

Progress = Callable[[str, int, int | None], None]


class DownloadError(DotrecError):
    """A download failed or its checksum did not match."""


def verify_checksum(data: bytes, checksum: str | None) -> str | None:
    """Return None if ``data`` matches ``checksum``, else a description of the mismatch."""
    if checksum is None:
        return None
    kind, _, expected = checksum.partition(":")
    if kind == "sha256":
        actual = hashlib.sha256(data).hexdigest()
    elif kind == "gitblob":
        actual = hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()
    elif kind == "pairs256":
        try:
            actual = pairs_sha256(data)
        except DataError as e:
            return f"not a user-items file ({e.problem})"
    else:
        raise ValueError(f"unknown checksum kind {kind!r}")
    return None if actual == expected else f"{kind} {actual} != expected {expected}"


def pairs_sha256(data: bytes) -> str:
    """sha256 of a user-items file's sorted pairs as ``user<TAB>item`` lines joined by
    newlines (no trailing one): a checksum of its content that ignores the order in a line."""
    users, items = parse_user_items(data.decode("utf-8", errors="strict"), "<download>")
    order = np.lexsort((items, users))
    text = "\n".join(f"{u}\t{i}" for u, i in zip(users[order].tolist(), items[order].tolist()))
    return hashlib.sha256(text.encode()).hexdigest()


def _fetch(url: str, progress: Progress | None, label: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http/https only)
            total = resp.headers.get("Content-Length")
            total_n = int(total) if total and total.isdigit() else None
            buf = io.BytesIO()
            while chunk := resp.read(1 << 16):
                buf.write(chunk)
                if progress is not None:
                    progress(label, buf.tell(), total_n)
            data = buf.getvalue()
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"{url}: download failed ({e})") from None
    if total_n is not None and len(data) != total_n:
        raise DownloadError(f"{url}: got {len(data)} bytes, expected {total_n} (truncated)")
    return data


def download_file(
    rf: RemoteFile,
    dest: Path,
    *,
    url: str | None = None,
    progress: Progress | None = None,
    timeout: float = 60.0,
) -> Path:
    """Fetch one file (from ``url`` if given, else ``rf.url``), verify it, write it atomically."""
    src = url or rf.url
    data = _fetch(src, progress, rf.name, timeout)
    if rf.member is not None and url is None:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                data = zf.read(rf.member)
        except (zipfile.BadZipFile, KeyError) as e:
            raise DownloadError(f"{src}: cannot extract {rf.member} ({e})") from None
    problem = verify_checksum(data, rf.checksum)
    if problem:
        raise DownloadError(
            f"{src}: checksum mismatch for {rf.name} ({problem}); nothing was written"
        )
    target = dest / rf.name
    atomic_write_bytes(target, data)
    return target


def download(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    mirror: str | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> list[Path]:
    """Download every file of dataset ``name`` into ``DATA_DIR/NAME``.

    ``mirror``: a base URL serving ``NAME/FILE`` directly (the extracted files), used instead
    of the upstream URLs. Files already present with a matching checksum are kept unless
    ``force``.
    """
    spec = DATASETS.get(name)
    if spec is None:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if not spec.files:
        raise DownloadError(f"dataset {name!r} has nothing to download ({spec.description})")
    dest = dataset_path(name, data_dir)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for rf in spec.files:
        target = dest / rf.name
        if (
            target.exists()
            and not force
            and verify_checksum(target.read_bytes(), rf.checksum) is None
        ):
            written.append(target)
            continue
        url = f"{mirror.rstrip('/')}/{name}/{rf.name}" if mirror else None
        written.append(download_file(rf, dest, url=url, progress=progress))
    return written


__all__ = ["DownloadError", "download", "download_file", "verify_checksum"]

"""Model artifacts: a directory holding ``model.json`` and ``arrays.npz``, never a pickle.

``model.json`` records the model name, its hyperparameters, the seed, the fingerprint of the
training data, the dotrec version, the artifact format version and the sha256 of ``arrays.npz``.
``arrays.npz`` is a plain numpy archive loaded with ``allow_pickle=False``.

Writes are atomic: the new artifact is written in full into a temporary sibling directory and
then swapped into place in one step, so a crash leaves either the old artifact or the new one,
never a mix and never neither.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dotrec._version import __version__
from dotrec.errors import ArtifactError

FORMAT = "dotrec-model"
FORMAT_VERSION = 1
META_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    # The only way to read the process umask is to set it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temp_dir(target: Path) -> Path:
    """A new temporary directory beside ``target``, to build it in before the swap.

    ``mkdtemp`` makes it private (0700); once renamed into place it gets the mode a plain
    ``mkdir`` would have given, so that a model saved by one user can be served by another.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename.

    The file gets the mode a plain ``open(path, "wb")`` would give it (``mkstemp`` alone
    leaves it private, 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def written_by_dotrec(path: Path, meta_file: str, fmt: str) -> bool:
    """Whether ``path`` is a directory whose ``meta_file`` says it holds a ``fmt`` artifact."""
    try:
        return json.loads((path / meta_file).read_text(encoding="utf-8")).get("format") == fmt
    except (OSError, ValueError, AttributeError):
        return False


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Python has no binding for it (``os.replace`` cannot replace a non-empty directory), so it
    is called through ctypes. Returns False where the system or file system does not offer it.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def recover_dir(target: Path, meta_file: str, fmt: str) -> None:
    """Put back the previous ``target`` if a crash hit between the two renames of the
    fallback in :func:`replace_dir` (only where an atomic exchange is unavailable)."""
    if target.exists() or target.is_symlink():
        return
    for old in sorted(target.parent.glob(f".{target.name}.old-*")):
        if old.is_dir() and written_by_dotrec(old, meta_file, fmt):
            os.rename(old, target)
            _fsync_dir(target.parent)
            return


def replace_dir(tmp_dir: Path, target: Path, meta_file: str, fmt: str) -> None:
    """Move a fully written ``tmp_dir`` into place at ``target``, replacing an old one.

    A complete artifact is at ``target`` at every instant: the old and new directories are
    swapped in one atomic step, then the old one is removed. Where the system has no atomic
    exchange, the old directory is first renamed aside and :func:`recover_dir` puts it back
    after a crash in between. An existing ``target`` is replaced only if dotrec wrote it (its
    ``meta_file`` names ``fmt``); anything else there is left untouched and is an
    :class:`ArtifactError`.
    """
    recover_dir(target, meta_file, fmt)
    if not (target.exists() or target.is_symlink()):
        os.rename(tmp_dir, target)
        _fsync_dir(target.parent)
        return
    if not written_by_dotrec(target, meta_file, fmt):
        raise ArtifactError(
            f"{target} exists and is not a {fmt} directory written by "
            "dotrec; it was left untouched (choose another output path)"
        )
    if _exchange(tmp_dir, target):
        _fsync_dir(target.parent)
        shutil.rmtree(tmp_dir, ignore_errors=True)  # now holds the old artifact
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)
    os.rename(target, old)
    os.rename(tmp_dir, target)
    _fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise ArtifactError(f"array {name!r} has dtype object; artifacts never pickle")
    with open(path, "wb") as f:
        plain: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
        np.savez(f, **plain)
        f.flush()
        os.fsync(f.fileno())


def save_artifact(
    path: str | os.PathLike[str],
    meta: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    aux: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> Path:
    """Write an artifact directory atomically and return its path.

    ``meta`` is stored in ``model.json`` together with the format fields this module owns
    (``format``, ``format_version``, ``dotrec_version``, ``arrays``). ``aux`` maps a file name
    (``seen.npz``) to further arrays stored beside the model, each with its sha256 recorded
    under ``aux`` in ``model.json`` and checked by :func:`load_aux`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = make_temp_dir(target)
    try:
        arrays_path = tmp_dir / ARRAYS_FILE
        _write_npz(arrays_path, arrays)
        aux_meta = {}
        for name, aux_arrays in (aux or {}).items():
            _write_npz(tmp_dir / name, aux_arrays)
            aux_meta[name] = {"sha256": sha256_file(tmp_dir / name)}
        full_meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **dict(meta),
            "dotrec_version": __version__,
            "arrays": {
                "file": ARRAYS_FILE,
                "sha256": sha256_file(arrays_path),
                "shapes": {k: list(np.shape(v)) for k, v in arrays.items()},
            },
            "aux": aux_meta,
        }
        with open(tmp_dir / META_FILE, "w", encoding="utf-8") as f:
            json.dump(full_meta, f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        replace_dir(tmp_dir, target, META_FILE, FORMAT)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return target


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``model.json`` of an artifact directory (no arrays)."""
    meta_path = Path(path) / META_FILE
    if not Path(path).is_dir():
        raise ArtifactError(f"{path}: no such model directory")
    if not meta_path.is_file():
        raise ArtifactError(f"{meta_path}: missing; {path} is not a dotrec model directory")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{meta_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArtifactError(f"{meta_path}: not a dotrec model file (format != {FORMAT!r})")
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise ArtifactError(f"{meta_path}: format_version missing or not an integer")
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"{meta_path}: artifact format version {version} is newer than this dotrec "
            f"({__version__}) reads (<= {FORMAT_VERSION}); upgrade dotrec"
        )
    return meta


def _read_npz(path: Path, expected_sha: str | None, mmap: bool = False) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ArtifactError(f"{path}: missing")
    actual = sha256_file(path)
    if expected_sha != actual:
        raise ArtifactError(
            f"{path}: sha256 {actual[:16]}... does not match {expected_sha!s:.16}... recorded "
            "in model.json; the file is truncated or was altered"
        )
    try:
        if mmap:
            return _map_npz(path)
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise ArtifactError(f"{path}: unreadable ({e})") from None


def _map_npz(path: Path) -> dict[str, np.ndarray]:
    """Read-only memory maps of the arrays of an uncompressed ``.npz`` (what ``np.savez``
    writes): each member is an ``.npy`` stored as is, so its data is a contiguous run of the
    file. numpy maps single ``.npy`` files only (``np.load(mmap_mode=)`` ignores archives), so
    the offsets are read here from the zip's local headers and the ``.npy`` headers."""
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as f:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"array {name!r} is compressed and cannot be memory-mapped")
            f.seek(info.header_offset)
            local = f.read(30)  # the local file header: name and extra lengths at bytes 26-29
            if local[:4] != b"PK\x03\x04":
                raise ValueError(f"array {name!r}: no local zip header at its offset")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            f.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            if dtype.hasobject:
                raise ValueError(f"array {name!r} has dtype object; artifacts never pickle")
            if int(np.prod(shape)) == 0:
                out[name] = np.zeros(shape, dtype)
                continue
            mapped = np.memmap(
                path, dtype, "r", offset=f.tell(), shape=shape, order="F" if fortran else "C"
            )
            out[name] = np.asarray(mapped)  # a plain read-only ndarray over the mapping
    return out


def load_aux(path: str | os.PathLike[str], name: str) -> dict[str, np.ndarray] | None:
    """Read the auxiliary file ``name`` of an artifact (sha256-checked), or None if absent."""
    meta = read_meta(path)
    info = (meta.get("aux") or {}).get(name)
    if info is None:
        return None
    return _read_npz(Path(path) / name, info.get("sha256"))


def load_artifact(
    path: str | os.PathLike[str], *, mmap: bool = False
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read an artifact directory, verify the arrays' sha256, and return ``(meta, arrays)``.

    ``mmap=True`` returns read-only arrays mapped from the file instead of read into memory:
    pages are read on first touch and shared by every process that maps the same file (the
    workers of a server), and a catalog larger than memory can be searched from disk.
    """
    meta = read_meta(path)
    arrays_info = meta.get("arrays") or {}
    arrays_path = Path(path) / str(arrays_info.get("file", ARRAYS_FILE))
    arrays = _read_npz(arrays_path, arrays_info.get("sha256"), mmap)
    for name, shape in (arrays_info.get("shapes") or {}).items():
        if name not in arrays:
            raise ArtifactError(f"{arrays_path}: array {name!r} missing")
        if list(arrays[name].shape) != list(shape):
            raise ArtifactError(
                f"{arrays_path}: array {name!r} has shape "
                f"{list(arrays[name].shape)}, model.json says {shape}"
            )
    return meta, arrays

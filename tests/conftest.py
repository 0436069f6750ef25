"""Shared fixtures: the real-data directory and tiny planted datasets."""

from __future__ import annotations

import importlib
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dotrec.data.interactions import Interactions
from dotrec.data.splits import Split, leave_one_out

REPO = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path:
    """``$DOTREC_DATA_DIR``, else ``../shared/data`` next to the repository."""
    env = os.environ.get("DOTREC_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The benchmark data. Missing data skips locally but fails in CI (CI=true)."""
    d = real_data_dir()
    if not (d / "ml-1m-u3k").is_dir():
        msg = f"real benchmark data not found in {d} (set DOTREC_DATA_DIR)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return d


def require(module: str) -> Any:
    """Import an optional dependency: skip the tests without it locally, fail in CI (CI=true).

    CI installs every extra, so a missing one there is a broken install, not a reason to skip.
    """
    if os.environ.get("CI", "").lower() == "true":
        return importlib.import_module(module)
    return pytest.importorskip(module)


def planted_interactions(
    n_users: int = 60, n_items: int = 40, n_blocks: int = 4, per_user: int = 8, seed: int = 0
) -> Interactions:
    """Block-structured data: users in block b interact only with items in block b.

    Every user's items are a random subset of its block; a model that learns the blocks ranks
    a held-out in-block item above out-of-block negatives.
    """
    r = np.random.default_rng(seed)
    users, items, times = [], [], []
    ipb = n_items // n_blocks
    for u in range(n_users):
        b = u % n_blocks
        its = r.choice(np.arange(b * ipb, (b + 1) * ipb), size=per_user, replace=False)
        users += [u] * per_user
        items += its.tolist()
        times += r.permutation(per_user).tolist()
    return Interactions.from_indices(
        np.array(users),
        np.array(items),
        n_users=n_users,
        n_items=n_items,
        timestamps=np.array(times),
    )


def planted_split(seed: int = 0, n_negatives: int = 20, **kw: int) -> Split:
    """:func:`planted_interactions` split by leave-one-out, negatives mostly out of block."""
    return leave_one_out(
        planted_interactions(seed=seed, **kw), seed=seed, n_negatives=n_negatives, name="planted"
    )


@pytest.fixture
def planted() -> Split:
    return planted_split()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how many fuzz cases each reader was given and how they ended."""
    try:
        from tests.reliability.test_fuzz_readers import FUZZ_COUNTS
    except ImportError:
        return
    if not FUZZ_COUNTS:
        return
    terminalreporter.section("reader fuzzing")
    readers: dict[str, Counter[str]] = {}
    files: dict[str, list[str]] = {}
    for name, counts in sorted(FUZZ_COUNTS.items()):
        reader, _, variant = name.partition("[")
        readers.setdefault(reader, Counter()).update(counts)
        if variant:
            files.setdefault(reader, []).append(f"{variant.rstrip(']')} {sum(counts.values())}")
    for reader, counts in sorted(readers.items()):
        parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        by_file = f" ({', '.join(files[reader])})" if reader in files else ""
        terminalreporter.write_line(
            f"{reader:20s} {sum(counts.values()):6d} cases: {parts}{by_file}"
        )

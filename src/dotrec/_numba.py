"""The one place that reads numba's thread limit (its config module is not typed)."""

from __future__ import annotations

import numba


def numba_threads(threads: int | None) -> int:
    """``threads`` (None or 0: all) capped at the threads numba's pool was started with."""
    limit = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    return max(1, min(int(threads or limit), limit))

"""Process-wide BLAS thread limit for code that runs its own threads over BLAS calls."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter: Any = None
_controller: Any = None


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Hold BLAS at one thread while any caller that threads its own work runs
    (reference-counted, so overlapping callers share one limit).

    Each of the caller's threads calls BLAS on its own block; a multithreaded BLAS underneath
    would oversubscribe the cores (measured in the blocked top-k search: 5-10x slower). The
    limit is process-wide while held.
    """
    global _blas_users, _blas_limiter, _controller
    with _blas_lock:
        if _controller is None:
            import scipy.linalg.cython_blas  # noqa: F401  (the BLAS numba's np.dot calls)
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        if _blas_users == 0:
            _blas_limiter = _controller.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None

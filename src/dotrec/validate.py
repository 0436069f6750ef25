"""The argument checks every part of dotrec shares: one place, one exception type.

Each raises :class:`~dotrec.errors.ConfigError` (a ``ValueError``) with the argument's name and
the value it got, so a bad hyperparameter, ``k`` or thread count reads the same everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dotrec.errors import ConfigError


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    """Raise unless ``value`` is a finite number > 0 (or >= 0 with ``allow_zero``)."""
    try:
        ok = value >= 0 if allow_zero else value > 0
    except TypeError:
        ok = False
    if not ok or (isinstance(value, float) and not np.isfinite(value)):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def check_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    """``value`` as an int; raise unless it is an integer > 0 (or >= 0). Booleans are refused."""
    try:
        integral = not isinstance(value, bool) and int(value) == value
    except (TypeError, ValueError, OverflowError):
        integral = False
    if not integral:
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    check_positive(name, value, allow_zero=allow_zero)
    return int(value)


def check_k(k: Any) -> int:
    """``k`` (results per query) as an int: of an integer type (not 2.0, not True) and >= 1."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be an integer >= 1, got {k!r}")
    return int(k)

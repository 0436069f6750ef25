"""Optional dependencies: import one, or say in one line which extra installs it."""

from __future__ import annotations

import importlib
from typing import Any

from dotrec.errors import ConfigError


def import_optional(module: str, needed_for: str, install: str, what: str | None = None) -> Any:
    """``import module``, or a :class:`ConfigError` in one line: "``needed_for`` needs
    ``what`` (default: the module's name): ``install``"."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{needed_for} needs {what or module}: {install}") from None

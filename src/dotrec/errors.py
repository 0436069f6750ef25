"""Exceptions and warnings raised by dotrec.

Every error a user can cause (bad files, bad flags, corrupt artifacts) is a subclass of
:class:`DotrecError`; the CLI prints its message as one line and exits non-zero.
"""

from __future__ import annotations

from os import PathLike
from typing import Any


class DotrecError(Exception):
    """Base class of every error dotrec raises on purpose."""


class DataError(DotrecError):
    """Malformed or inconsistent interaction data.

    The message names the file and, where one is to blame, the 1-based line number.
    """

    def __init__(
        self, message: str, path: str | PathLike[str] | None = None, line: int | None = None
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.problem = message
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
            where += ": "
        super().__init__(where + message)


class ArtifactError(DotrecError):
    """A model artifact is missing, corrupt, or from an incompatible version."""


class ConfigError(DotrecError, ValueError):
    """An invalid hyperparameter or option value."""


class DatasetNotFoundError(DotrecError):
    """A registered dataset's files are not in the data directory."""


class UnknownIdError(DotrecError, KeyError):
    """A user or item id that the model was not trained on."""

    def __init__(self, entity: str, external_id: Any) -> None:
        self.entity = entity
        self.external_id = external_id
        super().__init__(f"unknown {entity} id {external_id!r}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NotSupportedError(DotrecError):
    """The model cannot answer this kind of query."""


class NotFittedError(DotrecError, RuntimeError):
    """A model was asked to score or save before it was fitted (or loaded)."""


class DotrecWarning(UserWarning):
    """Something was changed on the caller's behalf (for example, merged duplicate pairs)."""

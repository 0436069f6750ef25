"""The parts of a study that runs for days: one record per stop, kept beside the storage.

A full study runs in parts (one per session of a shared machine), each stopped and resumed
from the committed storage, and a reader of its report must see what each part did and what the
whole run cost. The study's own accounting (:func:`dotrec.study.status.study_status`: trial
durations from the Optuna storage, final-fit seconds from the seed records) only holds work that
is still in the study; a final fit run again replaces its old record, so the machine time spent
is kept here instead: each part's hours are the growth of that accounting since the previous
part, plus ``extra_hours`` of work it no longer holds (with a note saying what). The records are
``parts.json`` (read back by :func:`load_parts`) and ``parts.md`` (the table for people), both in
the study's folder and both written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from dotrec.artifacts import atomic_write_bytes
from dotrec.errors import ArtifactError
from dotrec.machine import machine_label
from dotrec.study.driver import StudyConfig
from dotrec.study.status import study_status

#: The machine-readable record of the parts, in the study's folder.
PARTS_JSON = "parts.json"
#: The table of the parts, in the study's folder.
PARTS_MD = "parts.md"

#: A part adding less than this many hours (18 s) is not recorded: nothing ran.
_NOTHING_NEW_HOURS = 0.005


@dataclass(frozen=True)
class Part:
    """One part of a study's run, as recorded when it stopped.

    ``total_hours`` is the study's accounting at the stop; ``part_hours`` the machine time this
    part spent (its growth since the previous part, plus work the accounting no longer holds).
    """

    ended: str
    cells_done: int
    cells: int
    trials_finished: int
    trials: int
    total_hours: float
    part_hours: float
    ran_on: str
    note: str = ""


def load_parts(folder: str | Path) -> list[Part]:
    """The parts recorded in ``folder`` (empty where none were), oldest first."""
    path = Path(folder) / PARTS_JSON
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text())
        return [Part(**entry) for entry in raw]
    except (json.JSONDecodeError, TypeError) as exc:
        raise ArtifactError(f"{path}: not a record of a study's parts ({exc})") from exc


def hours_spent(parts: Sequence[Part]) -> float:
    """The machine time spent over all ``parts`` (the sum of each part's hours)."""
    return sum(p.part_hours for p in parts)


#: The columns of :func:`part_rows`, for parts.md and the study report.
PART_COLUMNS = (
    "part",
    "ended (UTC)",
    "cells done",
    "trials finished",
    "machine hours, this part",
    "machine hours, all parts",
    "ran on",
    "note",
)


def part_rows(parts: Sequence[Part]) -> list[tuple[str, ...]]:
    """A row of text per part (:data:`PART_COLUMNS`), with the running total of hours."""
    rows: list[tuple[str, ...]] = []
    spent = 0.0
    for i, p in enumerate(parts):
        spent += p.part_hours
        rows.append(
            (
                str(i + 1),
                p.ended,
                f"{p.cells_done}/{p.cells}",
                f"{p.trials_finished}/{p.trials}",
                f"{p.part_hours:.2f}",
                f"{spent:.2f}",
                p.ran_on,
                p.note,
            )
        )
    return rows


def parts_markdown(parts: Sequence[Part]) -> str:
    """``parts.md``: a row per part with its hours and the running total."""
    rows = [
        "| " + " | ".join(PART_COLUMNS) + " |",
        "|" + "---|" * len(PART_COLUMNS),
        *("| " + " | ".join(row) + " |" for row in part_rows(parts)),
    ]
    return (
        "# The parts of this study\n\n"
        "One row per part of the run, written when the part stopped "
        "(`experiments/record_part.py`, called by `experiments/stop_studies.sh`). Machine hours "
        "are the study's own accounting (`dotrec study --status`): trial durations and final "
        "fits, a trial killed at the end of a part counted to its latest epoch; a part's hours "
        'add what the accounting no longer holds (final fits run again), so "all parts" is '
        "the machine time spent.\n\n" + "\n".join(rows) + "\n"
    )


def record_part(
    config: StudyConfig,
    folder: str | Path,
    *,
    ended: str | None = None,
    ran_on: str | None = None,
    extra_hours: float = 0.0,
    note: str = "",
) -> Part | None:
    """Append the part that just stopped to ``folder``'s records; None if nothing ran since.

    ``ended`` (default now, e.g. ``2026-12-07T04:45Z``) and ``ran_on`` (default this machine)
    record a part whose session stopped before it could record itself.
    """
    folder = Path(folder)
    if extra_hours < 0:
        raise ValueError(f"extra_hours must be >= 0, got {extra_hours}")
    cells = study_status(config, folder)
    hours = sum(c.trial_seconds + c.fit_seconds for c in cells) / 3600
    parts = load_parts(folder)
    previous = parts[-1].total_hours if parts else 0.0
    if parts and hours - previous + extra_hours < _NOTHING_NEW_HOURS:
        return None
    part = Part(
        ended=ended or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
        cells_done=sum(c.state == "done" for c in cells),
        cells=len(cells),
        trials_finished=sum(min(c.finished, c.n_trials) for c in cells),
        trials=config.n_trials * len(cells),
        total_hours=round(hours, 3),
        part_hours=round(hours - previous + extra_hours, 3),
        ran_on=ran_on or f"{machine_label()} ({socket.gethostname()})",
        note=note,
    )
    parts.append(part)
    records = [{k: v for k, v in dataclasses.asdict(p).items() if k != "note" or v} for p in parts]
    atomic_write_bytes(folder / PARTS_JSON, (json.dumps(records, indent=1) + "\n").encode())
    atomic_write_bytes(folder / PARTS_MD, parts_markdown(parts).encode())
    return part

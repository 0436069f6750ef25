"""Where a study stands, read from its storage and cell records; nothing is run or written.

A full study runs for days in resumable parts (``experiments/study_ml1m_queue.sh``), so the
questions between parts are: which cells are done, how far the current one is, what the best
holdout values are so far, and how many machine hours each cell took. :func:`study_status`
answers them for the cells of a :class:`~dotrec.study.StudyConfig` (``dotrec study --status``)
from the Optuna storage (studies named ``DATASET:MODEL:dSIZE``) and the seed records under
``OUT/cells/``, with the machine-time accounting of :func:`dotrec.tune.tune`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from optuna.trial import TrialState

from dotrec.errors import ArtifactError, ConfigError
from dotrec.study.driver import StudyConfig, cell_dir
from dotrec.tune import counted_size, default_storage, open_storage, redact
from dotrec.tune.runner import best_of, first_finished, machine_seconds


@dataclass(frozen=True)
class CellStatus:
    """One cell's progress: its trials (over every run so far) and its recorded final fits.

    ``finished`` counts finished trials up to the budget ``n_trials``; ``running`` the trials
    marked running in the storage (one whose process was killed stays so until the next run
    fails it as stale). ``trial_seconds`` is the machine time of every trial, a running one up
    to its latest epoch; ``fit_seconds`` that of the recorded final fits.
    """

    model: str
    size: int
    n_trials: int
    n_seeds: int
    study_name: str | None
    finished: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    trial_seconds: float = 0.0
    seeds: int = 0
    fit_seconds: float = 0.0

    @property
    def counted_size(self) -> int:
        """The embedding size in the paper's accounting."""
        return counted_size(self.model, self.size)

    @property
    def state(self) -> str:
        """``done``, ``final fits`` (tuning budget reached), ``tuning`` or ``not started``."""
        if self.finished >= self.n_trials:
            return "done" if self.seeds >= self.n_seeds else "final fits"
        return "tuning" if self.finished or self.running or self.failed else "not started"


def _storage_url(config: StudyConfig, out: Path) -> str:
    """The study's storage URL; a missing SQLite file is an error (reading must not create it)."""
    url = config.storage or default_storage(out)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        raise ConfigError(f"no study storage at {redact(url)}: has this study started?")
    return url


def _study_names(names: list[str], dataset: str | None) -> dict[tuple[str, int], str]:
    """Map (model, size) to the stored study ``DATASET:MODEL:dSIZE``. A storage with the
    studies of several datasets needs ``dataset`` to choose one."""
    parsed: dict[str, dict[tuple[str, int], str]] = {}
    for name in names:
        parts = name.rsplit(":", 2)
        if len(parts) == 3 and parts[2].startswith("d") and parts[2][1:].isdigit():
            parsed.setdefault(parts[0], {})[(parts[1], int(parts[2][1:]))] = name
    if len(parsed) <= 1:
        return next(iter(parsed.values()), {})
    if dataset not in parsed:
        raise ConfigError(
            f"this storage holds the studies of {', '.join(sorted(parsed))}: pass --dataset "
            "with one of them"
        )
    return parsed[dataset]


def _fits(config: StudyConfig, out: Path, model: str, size: int) -> tuple[int, float]:
    """The number of recorded final-fit seeds of a cell and their summed fit time."""
    count, seconds = 0, 0.0
    for i in range(config.n_seeds):
        path = cell_dir(out, model, size) / f"seed{config.seed + i}.json"
        if not path.exists():
            continue
        try:
            seconds += float(json.loads(path.read_text())["fit_seconds"])
        except (OSError, ValueError, KeyError) as e:
            raise ArtifactError(f"unreadable study record ({e})", path) from None
        count += 1
    return count, seconds


def study_status(
    config: StudyConfig, out: str | Path, dataset: str | None = None
) -> list[CellStatus]:
    """The status of every cell of ``config`` (in the order a study runs them).

    ``dataset`` picks the studies of one dataset where a storage holds several. Seed records
    are counted, not checked against the data: a rerun of ``dotrec study`` recomputes a seed
    whose record no longer matches its cell.
    """
    out = Path(out)
    storage = open_storage(_storage_url(config, out))
    try:
        studies = {s.study_name: s._study_id for s in storage.get_all_studies()}
        names = _study_names(list(studies), dataset)
        cells = []
        for size in config.dims:
            for model in config.models:
                seeds, fit_seconds = _fits(config, out, model, size)
                name = names.get((model, size))
                if name is None:
                    cells.append(
                        CellStatus(model, size, config.n_trials, config.n_seeds, None, seeds=seeds)
                    )
                    continue
                trials = storage.get_all_trials(studies[name], deepcopy=False)
                budget = first_finished(trials, config.n_trials)
                best = best_of(budget)
                cells.append(
                    CellStatus(
                        model,
                        size,
                        config.n_trials,
                        config.n_seeds,
                        name,
                        finished=len(budget),
                        pruned=sum(t.state == TrialState.PRUNED for t in budget),
                        failed=sum(
                            t.state == TrialState.FAIL and not t.user_attrs.get("surplus")
                            for t in trials
                        ),
                        running=sum(t.state == TrialState.RUNNING for t in trials),
                        best_value=None if best is None else best.value,
                        best_trial=None if best is None else best.number,
                        trial_seconds=sum(map(machine_seconds, trials)),
                        seeds=seeds,
                        fit_seconds=fit_seconds,
                    )
                )
        return cells
    finally:
        storage.engine.dispose()

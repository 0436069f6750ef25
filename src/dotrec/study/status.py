"""Where a study stands, read from its storage and cell records; nothing is trained.

A full study runs for days in resumable parts (``experiments/study_ml1m_queue.sh``), so the
questions between parts are: which cells are done, how far the current one is, what the best
holdout values are so far, and how many machine hours each cell took. :func:`study_status`
answers them for the cells of a :class:`~dotrec.study.StudyConfig` (``dotrec study --status``)
from the Optuna storage (studies named ``DATASET:MODEL:dSIZE``) and the seed records under
``OUT/cells/``, with the machine-time accounting of :func:`dotrec.tune.tune` (it writes
nothing). :func:`interim_study` reads the cells already done for an interim report
(``dotrec study --interim``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from dotrec.data.splits import FileSplit, Split
from dotrec.errors import ArtifactError, ConfigError
from dotrec.study.driver import StudyConfig, StudyListener, StudyResult, cell_dir, run_study
from dotrec.tune import counted_size, default_storage, open_storage, redact
from dotrec.tune.checkpoint import CHECKPOINTS_DIR, saved_checkpoints, study_folder
from dotrec.tune.runner import TuneResult, summarize


@dataclass(frozen=True)
class CellStatus:
    """One cell's progress: its tuning so far (``None`` before its first trial), judged as
    :func:`dotrec.tune.tune` judges it, and its recorded final fits.

    ``running`` counts the trials marked running in the storage (one whose process was killed
    stays so until the next run fails it as stale; its time counts up to its latest epoch).
    """

    model: str
    size: int
    n_trials: int
    n_seeds: int
    tuning: TuneResult | None
    running: int = 0
    seeds: int = 0
    fit_seconds: float = 0.0
    #: Checkpoints a rerun resumes from (trials' ``trial-N``, final fits' ``final-seedI``):
    #: key -> saved phase -> epoch.
    checkpoints: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def counted_size(self) -> int:
        """The embedding size in the paper's accounting."""
        return counted_size(self.model, self.size)

    @property
    def finished(self) -> int:
        return 0 if self.tuning is None else self.tuning.finished

    @property
    def trial_seconds(self) -> float:
        return 0.0 if self.tuning is None else self.tuning.trial_seconds

    @property
    def state(self) -> str:
        """``done``, ``final fits`` (tuning budget reached), ``tuning`` or ``not started``."""
        if self.tuning is None:
            return "not started"
        if self.tuning.done:
            return "done" if self.seeds >= self.n_seeds else "final fits"
        return "tuning"


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
    url = _storage_url(config, out)
    storage = open_storage(url)
    try:
        names = _study_names([s.study_name for s in storage.get_all_studies()], dataset)
        cells = []
        for size in config.dims:
            for model in config.models:
                seeds, fit_seconds = _fits(config, out, model, size)
                name = names.get((model, size))
                tuning, running, checkpoints = None, 0, {}
                if name is not None:
                    checkpoints = saved_checkpoints(study_folder(out / CHECKPOINTS_DIR, name))
                    study = optuna.load_study(study_name=name, storage=storage)
                    tuning = summarize(study, config.n_trials, storage_url=url)
                    running = sum(
                        t.state == TrialState.RUNNING for t in study.get_trials(deepcopy=False)
                    )
                cells.append(
                    CellStatus(
                        model,
                        size,
                        config.n_trials,
                        config.n_seeds,
                        tuning,
                        running,
                        seeds,
                        fit_seconds,
                        checkpoints,
                    )
                )
        return cells
    finally:
        storage.engine.dispose()


def interim_study(
    split: Split | FileSplit,
    config: StudyConfig,
    out: str | Path,
    listener: StudyListener | None = None,
) -> StudyResult:
    """The cells of ``config`` already done in ``out`` (trial budget reached, every seed
    recorded), read and not trained: an interim report of a study that runs for days, also
    while another process runs it (``dotrec study --interim``). An error if none is done."""
    done = [(c.model, c.size) for c in study_status(config, out, split.name) if c.state == "done"]
    if not done:
        raise ConfigError(f"no cell of the study in {out} is done yet: nothing to report")
    return run_study(split, config, out, listener, cells=done)

"""Running a tuning study: storage, resumption, several workers, the trial budget.

Storage
    Any SQLAlchemy URL Optuna accepts; by default a local SQLite file
    (:func:`default_storage`). Every trial is written as it starts, reports and ends, so a
    study interrupted at any point (even by SIGKILL) resumes with nothing finished lost.
    With a PostgreSQL URL (``postgresql://user:password@host/db``, driver psycopg 3),
    several ``dotrec tune`` processes on one or many machines work on one study together.
Budget
    ``n_trials`` counts *finished* trials (complete or pruned) over all workers and all runs.
    A trial takes a slot only if fewer than ``n_trials`` unfailed trials precede it (by trial
    number); the rest end at once as failed "surplus" trials, which never trained anything. A
    worker that finds every remaining slot taken waits for the running trials to finish.
Crashes
    Workers send heartbeats. A trial whose worker stopped sending them for two heartbeat
    intervals (a killed process) is marked failed and queued again with the same
    configuration, so no slot is lost; with a checkpoint folder (``dotrec tune`` and ``study``
    keep one in their output folder) the retry resumes from the trial's last checkpoint
    (:mod:`dotrec.tune.checkpoint`) instead of its first epoch. Trials that fail with a dotrec
    error (for example a diverged fit) are recorded as failed and do not count; three in a row
    stop the worker.
Determinism
    TPE (Bergstra et al. 2011) with a random stream keyed by ``(seed, study, trial number)``:
    one worker with bit-reproducible fits (``threads=1`` for MF) repeats a study exactly; a
    resumed study or a second worker never repeats a draw of another trial. Trial 0 is the
    model's published configuration (:data:`dotrec.tune.spaces.REFERENCE`).
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.distributions import BaseDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.samplers import BaseSampler, TPESampler
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from dotrec.data.splits import DEFAULT_EVAL_NEGATIVES, FileSplit, Split
from dotrec.errors import ConfigError, DotrecError
from dotrec.eval.holdout import tuning_holdout
from dotrec.random import int_seed
from dotrec.tune.checkpoint import CHECKPOINT_ATTR, DEFAULT_EVERY, study_folder, sweep
from dotrec.tune.objective import ELAPSED_ATTR, MACHINE_ATTR, EpochEvent, HoldoutObjective
from dotrec.tune.spaces import TORCH_MODELS, Int, reference, space

PRUNERS = ("median", "halving", "none")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
#: Consecutive failed trials after which a worker gives up.
MAX_CONSECUTIVE_FAILURES = 3


def default_storage(directory: str | Path) -> str:
    """The SQLite URL of ``DIRECTORY/optuna.db``."""
    return f"sqlite:///{Path(directory).resolve() / 'optuna.db'}"


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and reports)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def storage_label(url: str, folder: str | Path) -> str:
    """``url`` as files meant for git show it: redacted, and a SQLite file inside ``folder``
    named relative to it, so that a committed report or tuning record names no machine's paths.
    """
    url = redact(url)
    prefix = "sqlite:///"
    if url.startswith(prefix):
        path, base = Path(url[len(prefix) :]), Path(folder).resolve()
        if path.is_absolute() and path.is_relative_to(base):
            return f"SQLite {path.relative_to(base).as_posix()} in the study folder"
    return url


@dataclass(frozen=True)
class TuneSettings:
    """Everything that defines a study; a stored study is reused only with equal settings."""

    model: str
    size: int
    dataset: str
    train_fingerprint: str
    metric: str = "ndcg"
    k: int = 10
    seed: int = 0
    pruner: str = "median"
    epoch_scale: float = 1.0
    holdout_negatives: int = DEFAULT_EVAL_NEGATIVES
    #: File splits: how many users' held-out items are scored (None: every user's).
    holdout_users: int | None = None
    #: GMF, MLP and NeuMF only (None for the others): their optimizer and precision.
    optimizer: str | None = None
    precision: str | None = None
    #: Patience of early stopping inside each trial (None: every sampled epoch is trained).
    early_stopping: int | None = None

    def default_name(self) -> str:
        """``DATASET:MODEL:dSIZE``, the study name used when none is given."""
        return f"{self.dataset}:{self.model}:d{self.size}"


@dataclass(frozen=True)
class TuneProgress:
    """A snapshot for progress displays: the budget, the best so far, the running trial."""

    finished: int
    total: int
    best_value: float | None
    best_trial: int | None
    event: EpochEvent | None = None
    waiting_for: int = 0


@dataclass(frozen=True)
class TuneResult:
    """The outcome of :func:`tune` (over every worker and run of the study so far).

    ``seconds`` is this call's wall time; ``trial_seconds`` the summed duration of every trial
    the study has run (all workers and runs; a failed or running trial up to its latest epoch),
    and ``machines`` splits it by the hardware the trials ran on (:func:`trial_machine`).
    """

    study_name: str
    storage: str
    n_trials: int
    complete: int
    pruned: int
    failed: int
    best_value: float | None
    best_trial: int | None
    best_params: dict[str, Any]
    best_attrs: dict[str, Any]
    timed_out: bool
    seconds: float
    trial_seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    machines: dict[str, float] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return self.complete + self.pruned

    @property
    def done(self) -> bool:
        """True when the budget of finished trials is reached."""
        return self.finished >= self.n_trials


class TrialSeededTPE(BaseSampler):
    """TPE whose random stream is keyed by ``(seed, key, trial number)``; trial 0 takes
    ``first`` (the reference configuration) where it names a parameter.

    A plain ``TPESampler(seed=s)`` restarts its stream in every process, so a resumed study or
    a second worker would draw the startup configurations of earlier trials again. ``key``
    (the model and size of the study) keeps different studies from sharing draws. Trial
    numbers are unique in a study, so only one trial, whichever worker runs it, is trial 0.
    """

    def __init__(self, seed: int, key: str = "", first: dict[str, Any] | None = None) -> None:
        self.seed = int(seed)
        self.key = key
        self.first = dict(first or {})
        self._tpe = self._sampler(0)

    def _sampler(self, number: int) -> TPESampler:
        return TPESampler(seed=int_seed(self.seed, f"tpe:{self.key}", number) % 2**32)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._tpe = self._sampler(trial.number)
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if trial.number == 0 and param_name in self.first:
            return self.first[param_name]
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()


def make_pruner(name: str, warmup: int = 1) -> optuna.pruners.BasePruner:
    """``median`` (Optuna's MedianPruner), ``halving`` (successive halving) or ``none``.

    No trial is pruned before epoch ``warmup``: the study passes the fewest epochs its search
    space trains, since early epochs of slow-starting configurations (SGD MF's first epochs sit
    at the popularity ranking) say little about where they end.
    """
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup - 1)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"pruner must be one of {', '.join(PRUNERS)}, got {name!r}")


def open_storage(url: str, heartbeat: int = 10) -> RDBStorage:
    """An Optuna RDB storage with heartbeats and retry of trials whose worker died."""
    if heartbeat < 1:
        raise ConfigError(f"heartbeat must be >= 1 second, got {heartbeat}")
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        engine: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        engine = {"pool_pre_ping": True}
    shown = redact(url)
    if url.startswith(("postgresql://", "postgres://")):
        # The driver of the `tune` extra is psycopg 3 (older SQLAlchemy defaults to psycopg2).
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    last: Exception | None = None
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                storage = RDBStorage(
                    url,
                    engine_kwargs=engine,
                    heartbeat_interval=heartbeat,
                    grace_period=2 * heartbeat,
                    heartbeat_stale_trial_callback=(RetryHeartbeatStaleTrialCallback(max_retry=3)),
                )
            if url.startswith("sqlite:///"):
                _use_wal(storage)
            return storage
        except ImportError as e:
            raise ConfigError(
                f"storage {shown}: missing database driver ({e}); pip install 'dotrec[tune]'"
            ) from None
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as e:
            # Workers that start together may race to create the schema; retry once it exists.
            last = e
            time.sleep(0.5 * (attempt + 1))
        except Exception as e:  # bad URL, unreachable server, incompatible schema, ...
            last = e
            break
    first_line = str(last).strip().splitlines()[0] if str(last).strip() else type(last).__name__
    raise ConfigError(f"cannot open storage {shown}: {first_line}")


def _warmup(settings: TuneSettings) -> int:
    epochs = space(settings.model, settings.epoch_scale)["epochs"]
    assert isinstance(epochs, Int)
    return epochs.low


def _use_wal(storage: RDBStorage) -> None:
    """SQLite in WAL mode without an fsync per commit: a killed process loses nothing it
    committed (only a power cut could), and each of a trial's many small writes is ~100x
    cheaper than with the default rollback journal."""

    def pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    sqlalchemy.event.listen(storage.engine, "connect", pragmas)
    storage.engine.dispose()  # reconnect: pooled connections predate the listener


def open_study(storage: RDBStorage, name: str, settings: TuneSettings) -> Study:
    """Create or load the study ``name``; refuse one that was made with other settings."""
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=TrialSeededTPE(
            settings.seed,
            f"{settings.model}:{settings.size}",
            reference(settings.model, settings.epoch_scale),
        ),
        pruner=make_pruner(settings.pruner, _warmup(settings)),
        direction="maximize",
        load_if_exists=True,
    )
    wanted = asdict(settings)
    stored = study.user_attrs.get("dotrec_settings")
    if stored is None:
        study.set_user_attr("dotrec_settings", wanted)
    elif diff := ", ".join(
        f"{k}: {stored.get(k)!r} there, {v!r} here" for k, v in wanted.items() if stored.get(k) != v
    ):
        # A setting added after the study was stored reads as None there (its old meaning).
        raise ConfigError(
            f"study {name!r} in {redact(storage.url)} was made with other "
            f"settings ({diff}); choose another --study name or storage"
        )
    return study


class _NoSlot(Exception):
    """Raised inside a trial that would exceed the budget (it ends as a failed trial)."""


def _states(study: Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False)


def first_finished(trials: Sequence[FrozenTrial], n_trials: int) -> list[FrozenTrial]:
    """The first ``n_trials`` finished trials by number: the budget every cell is judged on."""
    done = sorted((t for t in trials if t.state in FINISHED), key=lambda t: t.number)
    return done[:n_trials]


def best_of(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """The complete trial with the highest value (lowest number on ties), if any."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return max(complete, key=lambda t: (t.value, -t.number), default=None)


def run_trials(
    study: Study,
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    *,
    timeout: float | None = None,
    on_progress: Callable[[TuneProgress], None] | None = None,
) -> bool:
    """Run trials until ``n_trials`` have finished in the study; True if stopped by timeout."""
    if n_trials < 1:
        raise ConfigError(f"the number of trials must be >= 1, got {n_trials}")
    start = time.monotonic()
    failures = 0
    outcome: dict[str, str] = {}

    def claim_and_run(trial: optuna.Trial) -> float:
        outcome.clear()
        ahead = sum(
            1
            for t in _states(study)
            if t.number < trial.number
            and t.state in (*FINISHED, TrialState.RUNNING, TrialState.WAITING)
        )
        if ahead >= n_trials:
            trial.set_user_attr("surplus", True)
            raise _NoSlot(f"trial {trial.number}: all {n_trials} slots are taken")
        try:
            return objective(trial)
        except DotrecError as e:
            outcome["error"] = f"trial {trial.number}: {e}"
            raise

    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            fail_stale_trials(study)
        trials = _states(study)
        finished = sum(t.state in FINISHED for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        if on_progress is not None:
            best = best_of(first_finished(trials, n_trials))
            busy = running if finished + running >= n_trials and not waiting else 0
            on_progress(
                TuneProgress(
                    min(finished, n_trials),
                    n_trials,
                    None if best is None else best.value,
                    None if best is None else best.number,
                    None,
                    busy,
                )
            )
        if finished >= n_trials:
            return False
        if timeout is not None and time.monotonic() - start >= timeout:
            return True
        if finished + running >= n_trials and not waiting:
            time.sleep(1.0)  # every slot is taken: wait for the other workers' trials
            continue
        study.optimize(claim_and_run, n_trials=1, catch=(DotrecError, _NoSlot))
        failures = failures + 1 if "error" in outcome else 0
        if failures >= MAX_CONSECUTIVE_FAILURES:
            raise DotrecError(f"{failures} trials in a row failed; the last, {outcome['error']}")


def summarize(
    study: Study,
    n_trials: int,
    *,
    timed_out: bool = False,
    seconds: float = 0.0,
    storage_url: str = "",
) -> TuneResult:
    """The :class:`TuneResult` of a study judged on its first ``n_trials`` finished trials."""
    trials = _states(study)
    budget = first_finished(trials, n_trials)
    best = best_of(budget)
    return TuneResult(
        study_name=study.study_name,
        storage=redact(storage_url),
        n_trials=n_trials,
        complete=sum(t.state == TrialState.COMPLETE for t in budget),
        pruned=sum(t.state == TrialState.PRUNED for t in budget),
        failed=sum(t.state == TrialState.FAIL and not t.user_attrs.get("surplus") for t in trials),
        best_value=None if best is None else best.value,
        best_trial=None if best is None else best.number,
        best_params={} if best is None else _refit_params(best),
        best_attrs={} if best is None else _best_attrs(best),
        timed_out=timed_out,
        seconds=seconds,
        trial_seconds=sum(map(machine_seconds, trials)),
        settings=dict(study.user_attrs.get("dotrec_settings") or {}),
        machines=machine_split(trials),
    )


def trial_machine(t: FrozenTrial) -> str:
    """The hardware ``t`` ran on; for a trial stored before dotrec recorded it, its host."""
    if MACHINE_ATTR in t.user_attrs:
        return str(t.user_attrs[MACHINE_ATTR])
    worker = t.user_attrs.get("worker")
    return f"host {str(worker).rsplit(':', 1)[0]}" if worker else "not recorded"


def machine_split(trials: Sequence[FrozenTrial]) -> dict[str, float]:
    """Machine seconds of ``trials`` per hardware label, in the order the labels first appear."""
    split: dict[str, float] = {}
    for t in trials:
        label = trial_machine(t)
        split[label] = split.get(label, 0.0) + machine_seconds(t)
    return split


def sweep_checkpoints(study: Study, folder: Path) -> list[str]:
    """Remove the trial checkpoints of ``study`` in ``folder`` that no trial will resume: all
    but those of running trials and of queued retries (stale trials are failed first, which
    queues their retries). Returns the names removed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        fail_stale_trials(study)
    live = (TrialState.RUNNING, TrialState.WAITING)
    keep = [str(t.user_attrs.get(CHECKPOINT_ATTR)) for t in _states(study) if t.state in live]
    return sweep(folder, keep)


def machine_seconds(t: FrozenTrial) -> float:
    """Machine time a trial took. A failed or running one counts up to its latest epoch: one
    found stale is closed by the next run, so its end time includes the wait for that run."""
    if t.state in (TrialState.FAIL, TrialState.RUNNING):
        return float(t.user_attrs.get(ELAPSED_ATTR, 0.0))
    if t.datetime_complete is None or t.datetime_start is None:
        return 0.0
    return (t.datetime_complete - t.datetime_start).total_seconds()


def _torch_settings(model: str, torch_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The optimizer and precision a torch model's study is defined by (defaults filled in)."""
    if model not in TORCH_MODELS:
        return {}
    opts = torch_options or {}
    return {"optimizer": opts.get("optimizer", "adam"), "precision": opts.get("precision", "fp32")}


def tune(
    split: Split | FileSplit,
    model: str,
    *,
    size: int,
    n_trials: int,
    storage: str | RDBStorage,
    study_name: str | None = None,
    metric: str = "ndcg",
    k: int = 10,
    seed: int = 0,
    threads: int = 1,
    pruner: str = "median",
    epoch_scale: float = 1.0,
    timeout: float | None = None,
    heartbeat: int = 10,
    holdout_negatives: int = DEFAULT_EVAL_NEGATIVES,
    holdout_users: int | None = None,
    on_progress: Callable[[TuneProgress], None] | None = None,
    torch_options: Mapping[str, Any] | None = None,
    early_stopping: int | None = None,
    checkpoints: Path | None = None,
    checkpoint_every: float = DEFAULT_EVERY,
) -> TuneResult:
    """Tune ``model`` at embedding ``size`` on the holdout of ``split`` (its test set unread).

    The holdout is :func:`~dotrec.eval.holdout.tuning_holdout` of ``split`` (``seed``,
    ``holdout_negatives`` for leave-one-out splits, ``holdout_users`` for file splits).
    ``storage`` is a URL or a
    storage from :func:`open_storage` (which then sets the heartbeat). Resumes the study if it
    exists (same settings required) and returns once ``n_trials`` trials have finished in it,
    or when ``timeout`` seconds have passed (checked between trials). See the module doc for
    storage, budget and crash handling. ``torch_options`` (``optimizer``, ``precision``,
    ``device``) apply to GMF, MLP and NeuMF; the first two are part of the study's settings.
    ``early_stopping`` (patience) stops each trial N epochs after its best holdout epoch; the
    result's ``best_params["epochs"]`` is then the best trial's best epoch (the sampled maximum
    stays in ``best_attrs["sampled_epochs"]``).
    ``checkpoints`` (a folder) keeps checkpoints of running trials, so that a trial killed
    mid-run resumes where it was saved (:mod:`dotrec.tune.checkpoint`; at most every
    ``checkpoint_every`` seconds) instead of training again from its first epoch.
    """
    space(model, epoch_scale)  # checks the model and the scale before any work
    if n_trials < 1:
        raise ConfigError(f"the number of trials must be >= 1, got {n_trials}")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"timeout must be > 0 seconds, got {timeout}")
    make_pruner(pruner)
    start = time.monotonic()
    # The only use of the split: its training interactions, through the holdout.
    train = split.train
    settings = TuneSettings(
        model=model,
        size=size,
        dataset=split.name,
        train_fingerprint=train.fingerprint(),
        metric=metric,
        k=k,
        seed=seed,
        pruner=pruner,
        epoch_scale=epoch_scale,
        holdout_negatives=holdout_negatives,
        holdout_users=holdout_users,
        **_torch_settings(model, torch_options),
        early_stopping=early_stopping,
    )
    holdout = tuning_holdout(split, seed, holdout_negatives, holdout_users)
    rdb = storage if isinstance(storage, RDBStorage) else open_storage(storage, heartbeat)
    study = open_study(rdb, study_name or settings.default_name(), settings)

    progress: dict[str, Any] = {"finished": 0, "best_value": None, "best_trial": None}

    def on_epoch(event: EpochEvent) -> None:
        if on_progress is not None:
            on_progress(
                TuneProgress(
                    progress["finished"],
                    n_trials,
                    progress["best_value"],
                    progress["best_trial"],
                    event,
                )
            )

    def remember(p: TuneProgress) -> None:
        progress.update(finished=p.finished, best_value=p.best_value, best_trial=p.best_trial)
        if on_progress is not None:
            on_progress(p)

    folder = None if checkpoints is None else study_folder(checkpoints, study.study_name)
    if folder is not None:
        sweep_checkpoints(study, folder)
    objective = HoldoutObjective(
        model,
        size,
        holdout,
        metric=metric,
        k=k,
        seed=seed,
        threads=threads,
        epoch_scale=epoch_scale,
        on_epoch=on_epoch,
        torch_options=torch_options,
        early_stopping=early_stopping,
        checkpoints=folder,
        checkpoint_every=checkpoint_every,
    )
    timed_out = run_trials(study, objective, n_trials, timeout=timeout, on_progress=remember)
    return summarize(
        study, n_trials, timed_out=timed_out, seconds=time.monotonic() - start, storage_url=rdb.url
    )


def _refit_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The trial's parameters, with the epochs early stopping chose (if it ran)."""
    params = dict(trial.params)
    if "best_epoch" in trial.user_attrs:
        params["epochs"] = int(trial.user_attrs["best_epoch"])
    return params


def _best_attrs(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    attrs = dict(trial.user_attrs)
    if "best_epoch" in attrs and "epochs" in trial.params:
        attrs["sampled_epochs"] = trial.params["epochs"]
    return attrs

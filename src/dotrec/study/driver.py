"""The comparison study: tune every model at every size, retrain the winners, test them.

For each model and embedding size (a *cell*):

1. tune it with :func:`dotrec.tune.tune` on the tuning holdout (equal trial budget for every
   cell; a study already stored with that budget is reused, an unfinished one resumed; the
   study is named ``DATASET:MODEL:dSIZE`` as by ``dotrec tune``, so studies tuned by
   ``dotrec tune`` workers with the same settings are reused);
2. retrain the best configuration of the cell's first ``n_trials`` finished trials on the full
   training data with ``n_seeds`` seeds (``seed``, ``seed + 1``, ...);
3. evaluate each retrained model on the test set under the protocols of the split's kind and
   record per-user results, so that any two cells can be compared pairwise over users:

   * a leave-one-out :class:`~dotrec.data.splits.Split`: protocols ``"sampled"`` (the split's
     evaluation negatives) and ``"full"`` (the full catalog); the ``.npz`` holds ``users`` and
     each protocol's per-user rank of the held-out item (``sampled_ranks``, ``full_ranks``);
   * a :class:`~dotrec.data.splits.FileSplit` (many test items per user): the one protocol
     ``"ranking"``, LightGCN's full ranking with training items excluded
     (:func:`dotrec.eval.ranking.evaluate_ranking`); the ``.npz`` holds ``users`` and the
     per-user ``ranking_recall``, ``ranking_ndcg`` and ``ranking_precision`` at the study's k.

Every finished seed is written to ``OUT/cells/MODEL-dSIZE/seedI.{json,npz}`` (atomically; the
JSON has the summaries and records the split's kind) and never recomputed while the cell's best
configuration, the split's kind, its data and ``k`` stay the same; the tuning storage is durable
too, so an interrupted study resumes where it stopped. A final fit in progress saves a
checkpoint like a tuning trial (``OUT/trial-checkpoints/STUDY/final-seedI``, at most every
``checkpoint_every`` seconds; :mod:`dotrec.tune.checkpoint`), so a stop loses minutes of it, not
the fit.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from optuna.storages import RDBStorage

from dotrec.artifacts import atomic_write_bytes
from dotrec.data.splits import DEFAULT_EVAL_NEGATIVES, FileSplit, Split
from dotrec.errors import ArtifactError, ConfigError
from dotrec.eval.holdout import METRICS, check_metric
from dotrec.eval.metrics import hit_rate, ndcg
from dotrec.eval.protocols import PROTOCOL_VERSION, evaluate
from dotrec.eval.ranking import PROTOCOL as RANKING_PROTOCOL
from dotrec.eval.ranking import evaluate_ranking
from dotrec.machine import machine_label
from dotrec.models import MODELS, DotProductModel, Model
from dotrec.tune import (
    PRUNERS,
    TuneProgress,
    TuneResult,
    counted_size,
    default_storage,
    fit_config,
    open_storage,
    storage_label,
    tune,
    width_for_size,
)
from dotrec.tune.checkpoint import CHECKPOINTS_DIR, DEFAULT_EVERY, TrialCheckpoint, study_folder
from dotrec.tune.spaces import check_model, phase_options

#: The two kinds of split a study runs on: leave-one-out (:class:`Split`) and given by files
#: (:class:`FileSplit`).
LEAVE_ONE_OUT = "leave_one_out"
FILES = "files"

#: The test protocols of each kind of split.
PROTOCOLS: dict[str, tuple[str, ...]] = {LEAVE_ONE_OUT: ("sampled", "full"), FILES: ("ranking",)}

#: The per-user metrics of each protocol, in report order (at the study's ``k``).
PROTOCOL_METRICS: dict[str, tuple[str, ...]] = {
    "sampled": ("hr", "ndcg"),
    "full": ("hr", "ndcg"),
    "ranking": ("recall", "ndcg", "precision"),
}


def split_kind(split: Split | FileSplit) -> str:
    """:data:`FILES` for a split given by files, else :data:`LEAVE_ONE_OUT`."""
    return FILES if isinstance(split, FileSplit) else LEAVE_ONE_OUT


def _check_protocol(kind: str, protocol: str) -> None:
    if protocol not in PROTOCOLS[kind]:
        split = "a leave-one-out split" if kind == LEAVE_ONE_OUT else "a split given by files"
        raise KeyError(
            f"no {protocol!r} results: a study on {split} has {', '.join(PROTOCOLS[kind])}"
        )


@dataclass(frozen=True)
class StudyConfig:
    """The settings of a study (``dotrec study`` flags)."""

    models: tuple[str, ...] = ("mf", "ials", "gmf", "mlp", "neumf")
    dims: tuple[int, ...] = (16, 32, 64, 128, 192)
    n_trials: int = 50
    n_seeds: int = 3
    metric: str = "ndcg"
    k: int = 10
    seed: int = 0
    pruner: str = "median"
    epoch_scale: float = 1.0
    threads: int = 1
    storage: str | None = None
    heartbeat: int = 10
    holdout_negatives: int = DEFAULT_EVAL_NEGATIVES
    #: File splits: how many users' held-out items score the trials (None: every user's).
    holdout_users: int | None = None
    #: Patience of early stopping inside each tuning trial (None: off).
    early_stopping: int | None = None
    #: Seconds between two checkpoints of a running trial (:mod:`dotrec.tune.checkpoint`).
    checkpoint_every: float = DEFAULT_EVERY
    #: GMF, MLP and NeuMF: "adam" or "lazy_adam", "fp32" or "bf16", "cpu", "cuda" or "auto".
    optimizer: str = "adam"
    precision: str = "fp32"
    device: str = "cpu"

    def torch_options(self) -> dict[str, str]:
        """The options of the torch models (GMF, MLP, NeuMF)."""
        return {"optimizer": self.optimizer, "precision": self.precision, "device": self.device}

    def __post_init__(self) -> None:
        if not self.models or not self.dims:
            raise ConfigError("a study needs at least one model and one embedding size")
        for m in self.models:
            check_model(m)
        if len(set(self.models)) != len(self.models) or len(set(self.dims)) != len(self.dims):
            raise ConfigError("--models and --dims must not repeat an entry")
        if min(self.dims) < 1:
            raise ConfigError(f"embedding sizes must be >= 1, got {min(self.dims)}")
        if self.n_trials < 1 or self.n_seeds < 1:
            raise ConfigError("--trials and --seeds must be >= 1")
        if self.metric not in METRICS or self.pruner not in PRUNERS:
            raise ConfigError(
                f"metric must be one of {', '.join(METRICS)} and pruner one of {', '.join(PRUNERS)}"
            )


@dataclass(frozen=True)
class SeedRun:
    """One retrained seed of a cell: test results under the protocols of the split's ``kind``.

    ``summaries[protocol]`` is the protocol's JSON summary. Per test user (row-aligned with
    ``users``): leave-one-out keeps ``ranks[protocol]``, the rank of the held-out item (so any
    cut-off can be read); a split given by files keeps ``values[protocol]["recall@K"]`` (and
    ``ndcg@K``, ``precision@K``) at the study's ``K``.
    """

    seed: int
    fit_seconds: float
    summaries: dict[str, dict[str, Any]]
    users: np.ndarray
    ranks: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    kind: str = LEAVE_ONE_OUT
    #: The hardware of the fit (:func:`dotrec.machine.machine_label`); None in records written
    #: before dotrec recorded it.
    machine: str | None = None

    @property
    def protocols(self) -> tuple[str, ...]:
        """The protocols this seed was tested under (those of its split's kind)."""
        return PROTOCOLS[self.kind]

    def per_user(self, protocol: str, metric: str, k: int) -> np.ndarray:
        """Per-user ``metric`` at ``k`` under ``protocol`` (float64, one per user).

        Leave-one-out: ``hr`` or ``ndcg`` at any ``k``; files: ``recall``, ``ndcg`` or
        ``precision`` at the recorded ``k`` only.
        """
        _check_protocol(self.kind, protocol)
        if self.kind == LEAVE_ONE_OUT:
            fn = {"hr": hit_rate, "ndcg": ndcg}[metric]
            return np.asarray(fn(self.ranks[protocol], k), dtype=np.float64)
        recorded = self.values[protocol]
        key = f"{metric}@{k}"
        if key not in recorded:
            raise KeyError(f"no per-user {key} recorded; this seed has {', '.join(recorded)}")
        return np.asarray(recorded[key], dtype=np.float64)


@dataclass(frozen=True)
class Cell:
    """A model at one embedding size: its tuning outcome and its retrained seeds."""

    model: str
    size: int
    tuning: TuneResult
    runs: tuple[SeedRun, ...]

    @property
    def width(self) -> int:
        """``embedding_dim`` (MF, iALS) or the predictive factor k (NCF models)."""
        return width_for_size(self.model, self.size)

    @property
    def counted_size(self) -> int:
        """The embedding size in the paper's accounting (k, 2k or 3k for the NCF models)."""
        return counted_size(self.model, self.size)

    @property
    def is_dot_product(self) -> bool:
        return issubclass(MODELS[self.model], DotProductModel)

    @property
    def kind(self) -> str:
        """The kind of split the cell was tested on (:data:`LEAVE_ONE_OUT` or :data:`FILES`)."""
        return self.runs[0].kind

    @property
    def protocols(self) -> tuple[str, ...]:
        """The test protocols of the cell's split kind."""
        return PROTOCOLS[self.kind]

    def metric(self, protocol: str, key: str) -> np.ndarray:
        """One summary value (e.g. ``"hr@10"``, ``"recall@20"``) per seed."""
        _check_protocol(self.kind, protocol)
        return np.array([r.summaries[protocol][key] for r in self.runs], dtype=np.float64)

    def per_user(self, protocol: str, metric: str, k: int) -> np.ndarray:
        """Per-user metric averaged over the seeds."""
        return np.mean([r.per_user(protocol, metric, k) for r in self.runs], axis=0)

    @property
    def fit_seconds(self) -> np.ndarray:
        return np.array([r.fit_seconds for r in self.runs], dtype=np.float64)


@dataclass(frozen=True)
class StudyResult:
    """Every cell of a study, with the settings and timings needed by the report.

    ``n_test`` is the number of test users; ``n_negatives`` the sampled protocol's negatives
    per user (None for a split given by files, which has no sampled protocol), and
    ``n_test_pairs`` the number of test (user, item) pairs (one per user for leave-one-out).
    """

    dataset: str
    config: StudyConfig
    cells: tuple[Cell, ...]
    n_test: int
    n_negatives: int | None
    wall_seconds: float
    storage: str
    extra: dict[str, Any] = field(default_factory=dict)
    kind: str = LEAVE_ONE_OUT
    n_test_pairs: int | None = None

    @property
    def protocols(self) -> tuple[str, ...]:
        """The test protocols of the study's split kind."""
        return PROTOCOLS[self.kind]


class StudyListener(Protocol):
    """Progress hooks of :func:`run_study` (any object with these methods)."""

    def cell_started(self, index: int, total: int, model: str, size: int) -> None:
        """Cell ``index`` (0-based) of ``total`` starts."""

    def tuning(self, progress: TuneProgress) -> None:
        """A tuning step finished (see :class:`dotrec.tune.TuneProgress`)."""

    def retraining(
        self, seed_index: int, n_seeds: int, phase: str, epoch: int, epochs: int
    ) -> None:
        """An epoch of the retraining of seed ``seed_index`` (0-based) finished."""

    def cell_finished(self, cell: Cell, reused: int) -> None:
        """A cell is complete; ``reused`` seeds came from an earlier run."""


class SilentListener:
    """A :class:`StudyListener` that ignores everything (the default)."""

    def cell_started(self, index: int, total: int, model: str, size: int) -> None:
        pass

    def tuning(self, progress: TuneProgress) -> None:
        pass

    def retraining(
        self, seed_index: int, n_seeds: int, phase: str, epoch: int, epochs: int
    ) -> None:
        pass

    def cell_finished(self, cell: Cell, reused: int) -> None:
        pass


def cell_dir(out: Path, model: str, size: int) -> Path:
    return out / "cells" / f"{model}-d{size}"


#: A record's value of a key it lacks: records written before file splits had no kind.
_RECORD_DEFAULTS: dict[str, Any] = {"split_kind": LEAVE_ONE_OUT}


def _record_key(split: Split | FileSplit, params: dict[str, Any], k: int) -> dict[str, Any]:
    """What a seed record must match to be reused (written into its JSON)."""
    if isinstance(split, FileSplit):
        return {
            "split_kind": FILES,
            "params": params,
            "train_fingerprint": split.train.fingerprint(),
            "test_fingerprint": split.test.fingerprint(),
            "k": k,
            "protocol_version": RANKING_PROTOCOL,
        }
    return {
        "split_kind": LEAVE_ONE_OUT,
        "params": params,
        "train_fingerprint": split.train.fingerprint(),
        "k": k,
        "protocol_version": PROTOCOL_VERSION,
    }


def _array_names(kind: str) -> list[str]:
    """The per-user arrays of a record (besides ``users``): ``PROTOCOL_ranks`` (leave-one-out)
    or ``PROTOCOL_METRIC`` (files; at the record's k)."""
    if kind == LEAVE_ONE_OUT:
        return [f"{p}_ranks" for p in PROTOCOLS[kind]]
    return [f"{p}_{m}" for p in PROTOCOLS[kind] for m in PROTOCOL_METRICS[p]]


def _seed_record(path: Path, key: dict[str, Any]) -> SeedRun | None:
    """The recorded seed at ``path`` (``.json`` + ``.npz``) if it matches ``key``, else None."""
    meta_path, arr_path = path.with_suffix(".json"), path.with_suffix(".npz")
    if not meta_path.exists() or not arr_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        with np.load(arr_path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (OSError, ValueError) as e:
        raise ArtifactError(
            f"{path}: unreadable study record ({e}); delete it to recompute"
        ) from None
    if any(meta.get(name, _RECORD_DEFAULTS.get(name)) != value for name, value in key.items()):
        return None
    kind, k = key["split_kind"], key["k"]
    missing = [n for n in ["users", *_array_names(kind)] if n not in arrays]
    if missing:
        raise ArtifactError(
            f"{arr_path}: study record lacks {', '.join(missing)}; delete it to recompute"
        )
    protocols = PROTOCOLS[kind]
    ranks: dict[str, np.ndarray] = {}
    values: dict[str, dict[str, np.ndarray]] = {}
    if kind == LEAVE_ONE_OUT:
        ranks = {p: arrays[f"{p}_ranks"] for p in protocols}
    else:
        values = {
            p: {f"{m}@{k}": arrays[f"{p}_{m}"] for m in PROTOCOL_METRICS[p]} for p in protocols
        }
    return SeedRun(
        seed=int(meta["seed"]),
        fit_seconds=float(meta["fit_seconds"]),
        summaries=meta["summaries"],
        users=arrays["users"],
        ranks=ranks,
        values=values,
        kind=kind,
        machine=meta.get("machine"),
    )


def _write_seed(path: Path, run: SeedRun, key: dict[str, Any], model: Model) -> None:
    buf = io.BytesIO()
    arrays: dict[str, Any] = {"users": run.users}
    if run.kind == LEAVE_ONE_OUT:
        arrays.update({f"{p}_ranks": run.ranks[p] for p in run.protocols})
    else:
        k = key["k"]
        arrays.update(
            {
                f"{p}_{m}": run.values[p][f"{m}@{k}"]
                for p in run.protocols
                for m in PROTOCOL_METRICS[p]
            }
        )
    np.savez(buf, **arrays)
    atomic_write_bytes(path.with_suffix(".npz"), buf.getvalue())
    meta = {
        "seed": run.seed,
        **key,
        "fit_seconds": run.fit_seconds,
        "machine": run.machine,
        "summaries": run.summaries,
        "config": model.config(),
        "fit_info": model.fit_info,
    }
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta, indent=1, default=str).encode())


def _test(
    model: Model, split: Split | FileSplit, seed: int, fit_seconds: float, k: int, threads: int
) -> SeedRun:
    """Evaluate a retrained seed on the test set under the protocols of the split's kind."""
    machine = machine_label(str(model.fit_info.get("device", "cpu")))
    if isinstance(split, FileSplit):
        res = evaluate_ranking(model, split, k=k, threads=threads)
        return SeedRun(
            seed=seed,
            fit_seconds=fit_seconds,
            summaries={"ranking": res.summary()},
            users=res.users,
            values={
                "ranking": {
                    f"recall@{k}": res.recall,
                    f"ndcg@{k}": res.ndcg,
                    f"precision@{k}": res.precision,
                }
            },
            kind=FILES,
            machine=machine,
        )
    both = evaluate(model, split, protocol="both", k=k)
    protocols = PROTOCOLS[LEAVE_ONE_OUT]
    return SeedRun(
        seed=seed,
        fit_seconds=fit_seconds,
        summaries={p: both[p].summary() for p in protocols},
        users=both["sampled"].users,
        ranks={p: both[p].ranks for p in protocols},
        machine=machine,
    )


def run_cell(
    split: Split | FileSplit,
    model: str,
    size: int,
    config: StudyConfig,
    out: Path,
    storage: RDBStorage,
    listener: StudyListener,
) -> Cell:
    """Tune (or resume, or reuse the tuning of) one cell, then retrain and test its winner."""
    result = tune(
        split,
        model,
        size=size,
        n_trials=config.n_trials,
        storage=storage,
        metric=config.metric,
        k=config.k,
        seed=config.seed,
        threads=config.threads,
        pruner=config.pruner,
        epoch_scale=config.epoch_scale,
        holdout_negatives=config.holdout_negatives,
        holdout_users=config.holdout_users,
        early_stopping=config.early_stopping,
        on_progress=listener.tuning,
        torch_options=config.torch_options(),
        checkpoints=out / CHECKPOINTS_DIR,
        checkpoint_every=config.checkpoint_every,
    )
    if result.best_trial is None:
        raise ConfigError(
            f"{model} at size {size}: all {result.finished} trials were pruned; "
            "raise --trials or use --pruner none"
        )
    folder = cell_dir(out, model, size)
    # The cell's tuning record for git: no wall time of this call (a rerun would rewrite it)
    # and no path of this machine; ``trial_seconds`` is the cell's machine time.
    record = asdict(result) | {"storage": storage_label(result.storage, out)}
    del record["seconds"]
    atomic_write_bytes(folder / "tuning.json", json.dumps(record, indent=1, default=str).encode())
    params = result.best_params
    key = _record_key(split, params, config.k)
    runs: list[SeedRun] = []
    reused = 0
    for i in range(config.n_seeds):
        seed = config.seed + i
        path = folder / f"seed{seed}"
        run = _seed_record(path, key)
        if run is not None:
            runs.append(run)
            reused += 1
            continue

        checkpoint = TrialCheckpoint(
            study_folder(out / CHECKPOINTS_DIR, result.study_name) / f"final-seed{seed}",
            params,
            phase_options(model, size, params, seed, config.threads, config.torch_options()),
            config.checkpoint_every,
        )
        resumed = checkpoint.load(split.train)
        before = checkpoint.elapsed  # seconds the fit ran before it was stopped
        start = time.perf_counter()

        def on_epoch(
            phase: str,
            epoch: int,
            epochs: int,
            m: Model,
            i: int = i,
            checkpoint: TrialCheckpoint = checkpoint,
            before: float = before,
            start: float = start,
        ) -> None:
            listener.retraining(i, config.n_seeds, phase, epoch, epochs)
            checkpoint.elapsed = before + time.perf_counter() - start
            checkpoint.epoch_done(phase, epoch, epochs, m)

        fitted = fit_config(
            model,
            size,
            params,
            split.train,
            seed=seed,
            threads=config.threads,
            on_epoch=on_epoch,
            torch_options=config.torch_options(),
            start=resumed,
        )
        fit_seconds = before + time.perf_counter() - start
        run = _test(fitted, split, seed, fit_seconds, config.k, config.threads)
        # The fitted model beside its record, ready for evaluate, recommend and serve (a
        # model written by an earlier, interrupted run of this seed is replaced).
        fitted.save(path, dataset=split.name, train=split.train)
        _write_seed(path, run, key, fitted)
        checkpoint.remove()
        runs.append(run)
    cell = Cell(model=model, size=size, tuning=result, runs=tuple(runs))
    listener.cell_finished(cell, reused)
    return cell


def run_study(
    split: Split | FileSplit,
    config: StudyConfig,
    out: str | Path,
    listener: StudyListener | None = None,
    cells: Collection[tuple[str, int]] | None = None,
) -> StudyResult:
    """Run (or resume) every cell of ``config`` on ``split``; results and storage in ``out``.

    ``config.metric`` must suit the split's kind (:func:`dotrec.eval.holdout.check_metric`):
    ndcg, hr or rr for leave-one-out, ndcg, recall or hr (read as recall) for files.
    ``cells``: only these (model, size) cells, in the study's order (an interim report reads
    the done ones: :func:`dotrec.study.status.interim_study`).
    """
    check_metric(split, config.metric)
    out = Path(out)
    listener = listener or SilentListener()
    url = config.storage or default_storage(out)
    todo = [(m, d) for d in config.dims for m in config.models]
    if cells is not None:
        todo = [cell for cell in todo if cell in cells]
    storage = open_storage(url, config.heartbeat)
    start = time.monotonic()
    results: list[Cell] = []
    for index, (model, size) in enumerate(todo):
        listener.cell_started(index, len(todo), model, size)
        results.append(run_cell(split, model, size, config, out, storage, listener))
    return StudyResult(
        dataset=split.name,
        config=config,
        cells=tuple(results),
        n_test=len(split.test_users),
        n_negatives=None if isinstance(split, FileSplit) else int(split.negatives.shape[1]),
        wall_seconds=time.monotonic() - start,
        storage=storage_label(url, out),
        kind=split_kind(split),
        n_test_pairs=len(split.test) if isinstance(split, FileSplit) else split.n_test,
    )

"""The experiment grid ``d x n_users x first_layer_mult x repeat``, run cell by cell, resumably.

Every finished run (one cell, one repeat) is recorded in ``results.json`` in the output directory,
written atomically after each run. A run already recorded there is not recomputed, so an
interrupted grid continues where it stopped and a grid can be extended with more values. The file
also records the settings that determine the numbers (seed, epochs, batch size, learning rate,
fresh-set size, protocol version); resuming with different settings is an error rather than a
silent mix of incompatible results.

For each ``(d, n_users, repeat)`` the data is drawn once and shared by every ``first_layer_mult``,
so the MLP sizes are compared on the same pairs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dotrec._torch import resolve_device
from dotrec._version import __version__
from dotrec.approx.data import N_FRESH, PAIRS_PER_USER, DotDataset, make_dataset, rmse
from dotrec.artifacts import atomic_write_bytes
from dotrec.errors import ArtifactError, ConfigError

RESULTS_FILE = "results.json"
FORMAT = "dotrec-approx-dot"
#: Bumped whenever a change alters the numbers a run produces.
PROTOCOL_VERSION = 1

#: The default grid: under 10 minutes on 2 CPU cores (measured: docs/approx_dot.md). m = 2
#: because m = 1 at d = 16 varies a lot from seed to seed; 12 epochs instead of the paper's 32.
DEFAULT_DIMS = (16, 32, 64)
DEFAULT_USERS = (2000, 4000, 8000)
DEFAULT_MULTS = (2,)
DEFAULT_REPEATS = 2
DEFAULT_EPOCHS = 12

#: Names of the RMSE columns of a run record: ``{model}_{part}``.
MODELS = ("mlp", "dot", "zero")
PARTS = ("train", "test", "fresh")


class RunKey(NamedTuple):
    """One run of the grid: a cell ``(d, n_users, first_layer_mult)`` and a repeat index."""

    d: int
    n_users: int
    first_layer_mult: int
    repeat: int


def _positive_distinct(name: str, values: tuple[int, ...], minimum: int = 1, why: str = "") -> None:
    if not values:
        raise ConfigError(f"{name}: needs at least one value")
    if len(set(values)) != len(values):
        raise ConfigError(f"{name}: duplicate values in {list(values)}")
    low = min(values)
    if low < minimum:
        raise ConfigError(f"{name}: every value must be >= {minimum}{why}, got {low}")


@dataclass(frozen=True)
class GridSpec:
    """What to run: the grid values and the settings that determine the results."""

    dims: tuple[int, ...] = DEFAULT_DIMS
    users: tuple[int, ...] = DEFAULT_USERS
    first_layer_mults: tuple[int, ...] = DEFAULT_MULTS
    repeats: int = DEFAULT_REPEATS
    epochs: int = DEFAULT_EPOCHS
    seed: int = 0
    batch_size: int = 256
    learning_rate: float = 1e-3
    n_fresh: int = N_FRESH

    def __post_init__(self) -> None:
        _positive_distinct("dims", self.dims)
        _positive_distinct(
            "users",
            self.users,
            PAIRS_PER_USER,
            f" ({PAIRS_PER_USER} distinct pairs per user, n_items = n_users)",
        )
        _positive_distinct("first_layer_mults", self.first_layer_mults)
        for name in ("repeats", "epochs", "batch_size", "n_fresh"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")

    def settings(self) -> dict[str, Any]:
        """The settings a recorded run must share to be reused (JSON-safe)."""
        s = asdict(self)
        for k in ("dims", "users", "first_layer_mults", "repeats"):
            s.pop(k)
        s["protocol_version"] = PROTOCOL_VERSION
        return s

    def runs(self) -> list[RunKey]:
        """Every run of the grid, in the order :func:`run_grid` computes them."""
        return [
            RunKey(d, n, m, r)
            for d in self.dims
            for n in self.users
            for r in range(self.repeats)
            for m in self.first_layer_mults
        ]


def _key_of(record: dict[str, Any]) -> RunKey:
    return RunKey(
        int(record["d"]),
        int(record["n_users"]),
        int(record["first_layer_mult"]),
        int(record["repeat"]),
    )


def load_runs(path: Path, settings: dict[str, Any]) -> dict[RunKey, dict[str, Any]]:
    """Recorded runs in ``path`` (empty if it does not exist), checked against ``settings``."""
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise ArtifactError(f"{path}: not a {FORMAT} results file")
        runs = {_key_of(r): r for r in doc["runs"]}
        recorded = doc["settings"]
    except (
        json.JSONDecodeError,
        UnicodeDecodeError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
    ) as e:
        raise ArtifactError(
            f"{path}: unreadable results file ({e}); move it away to start afresh"
        ) from None
    if recorded != settings:
        diff = ", ".join(
            f"{k}={recorded.get(k)!r} (now {settings.get(k)!r})"
            for k in sorted(set(recorded) | set(settings))
            if recorded.get(k) != settings.get(k)
        )
        raise ConfigError(
            f"{path} holds results computed with other settings: {diff}; use "
            "another --out directory or the same settings"
        )
    return runs


def save_runs(path: Path, settings: dict[str, Any], runs: dict[RunKey, dict[str, Any]]) -> None:
    """Write every recorded run to ``path`` atomically, in grid order."""
    doc = {
        "format": FORMAT,
        "dotrec_version": __version__,
        "settings": settings,
        "runs": [runs[k] for k in sorted(runs)],
    }
    atomic_write_bytes(path, (json.dumps(doc, indent=1) + "\n").encode("utf-8"))


def baseline_rmse(data: DotDataset) -> dict[str, float]:
    """RMSE of the true dot product and of the zero predictor on train, test and fresh."""
    out: dict[str, float] = {}
    for part in PARTS:
        y = data.labels(part)
        out[f"dot_{part}"] = rmse(data.dot_predictions(part), y)
        out[f"zero_{part}"] = rmse(np.zeros_like(y), y)
    return out


def _report_epoch(on_epoch: Callable[[RunKey, int], Any], key: RunKey, epoch: int) -> None:
    on_epoch(key, epoch)


def run_grid(
    spec: GridSpec,
    out_dir: str | Path,
    *,
    device: str = "cpu",
    threads: int = 1,
    on_epoch: Callable[[RunKey, int], Any] | None = None,
    on_run: Callable[[RunKey, dict[str, Any], bool], Any] | None = None,
) -> list[dict[str, Any]]:
    """Run every run of ``spec`` not yet recorded in ``out_dir/results.json``; return all of them.

    ``on_epoch(key, epoch)`` reports training progress; ``on_run(key, record, cached)`` is
    called once per run, with ``cached=True`` for a run taken from the results file. A record
    holds the run key, ``{mlp,dot,zero}_{train,test,fresh}`` RMSEs, the MLP's ``seconds`` and
    ``cpu_seconds``, the device and the thread count.
    """
    from dotrec.approx.mlp import train_mlp

    device = resolve_device(device)
    path = Path(out_dir) / RESULTS_FILE
    settings = spec.settings()
    runs = load_runs(path, settings)
    data_key: tuple[int, int, int] | None = None
    data: DotDataset | None = None
    baseline: dict[str, float] = {}
    for key in spec.runs():
        if key in runs:
            if on_run is not None:
                on_run(key, runs[key], True)
            continue
        if data_key != (key.d, key.n_users, key.repeat):
            data = None  # free the previous cell's data before drawing the next
            data = make_dataset(
                key.d, key.n_users, spec.seed, repeat=key.repeat, n_fresh=spec.n_fresh
            )
            data_key = (key.d, key.n_users, key.repeat)
            baseline = baseline_rmse(data)
        assert data is not None
        fit = train_mlp(
            data,
            key.first_layer_mult,
            seed=spec.seed,
            repeat=key.repeat,
            epochs=spec.epochs,
            batch_size=spec.batch_size,
            learning_rate=spec.learning_rate,
            device=device,
            threads=threads,
            on_epoch=None if on_epoch is None else partial(_report_epoch, on_epoch, key),
        )
        record = {
            **key._asdict(),
            "mlp_train": fit.train_rmse,
            "mlp_test": fit.test_rmse,
            "mlp_fresh": fit.fresh_rmse,
            **baseline,
            "seconds": round(fit.seconds, 3),
            "cpu_seconds": round(fit.cpu_seconds, 3),
            "device": device,
            "threads": threads,
        }
        runs[key] = record
        save_runs(path, settings, runs)
        if on_run is not None:
            on_run(key, record, False)
    return [runs[k] for k in spec.runs()]

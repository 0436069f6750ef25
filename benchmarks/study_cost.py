"""Expected wall time of a `dotrec study` on a dataset, from measured epoch times.

The full ml-1m study (5 models x 5 sizes, 50 trials, 3 seeds) is far too long to time end to end
on a 2-core machine, so this script measures what it is made of and adds it up:

1. One training epoch of every model at every size, with the published settings, on this
   machine (``--threads``). MF and iALS train on the whole training set; GMF, MLP and NeuMF on a
   random ``--sample`` of the training pairs, scaled up (their cost is linear in the number of
   examples), with ``--optimizer`` and ``--precision``. The NCF models are timed at batch 256
   and 1024, which gives the per-example and per-step parts of their cost (a dense Adam step
   touches every embedding row, whatever the batch size). One holdout evaluation (sampled
   protocol; the study evaluates after every epoch for pruning) is timed on the real data too.
2. The cost of a configuration: epochs x the epoch time at its negatives and batch size, plus
   one holdout evaluation per epoch; NeuMF adds its GMF and MLP pretraining. The expected trial
   cost is the mean over ``--draws`` configurations drawn uniformly from the search space (what
   TPE does in its first trials; later it concentrates where the holdout is best), with trial 0
   the published configuration. Pruning is modelled as stopping ``--pruned`` of the trials
   after a third of their epochs.
3. The final fits: ``--seeds`` fits of the published configuration (the winner is not known in
   advance) plus a test evaluation under both protocols.

Prints the epoch table, the expected hours per model and the total. ``--epochs-from`` reuses
the epoch and evaluation times of an earlier ``--json`` record (its optimizer and precision)
instead of timing them again, to price another budget (``--trials``, ``--seeds``, ``--pruned``)
without a quiet machine.

``--runs-from OUT`` prices a study that has begun by what its tuner did rather than by uniform
draws: every finished trial of a cell is priced at the epochs it ran (a pruned one stops where
it stopped), next to the machine time the storage measured for it (a check of the pricing), and
the trials a cell still lacks are priced as the trials at the same positions of the model's
most advanced cell, at the cell's own size (TPE tends to settle in the same region of the
space at every size); missing final fits are priced at the cell's best configuration, or that
of the most advanced cell. A model no cell of which has begun falls back to the uniform draws.

Time on a quiet machine with ``OMP_WAIT_POLICY`` unset, as the study queues run (``PASSIVE``
makes the NCF epochs 2-2.5x slower; experiments/study_ml1m.md). Example::

    python benchmarks/study_cost.py --dataset ml-1m --trials 50 --seeds 3
    python benchmarks/study_cost.py --epochs-from experiments/study_cost_ml1m_lazy_fp32.json \
        --trials 20
    python benchmarks/study_cost.py --epochs-from experiments/study_cost_ml1m_lazy_fp32.json \
        --trials 20 --runs-from experiments/study-ml1m
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from dotrec.data.interactions import Interactions
from dotrec.data.registry import load_dataset
from dotrec.eval.protocols import evaluate
from dotrec.machine import machine_line
from dotrec.models import MODELS, Model, NeuMF
from dotrec.random import rng
from dotrec.study import StudyConfig
from dotrec.study.status import CellStatus, study_status
from dotrec.tune import default_storage, open_storage
from dotrec.tune.runner import first_finished, machine_seconds
from dotrec.tune.spaces import Choice, Float, Int, fit_config, reference, space, width_for_size

NCF = ("gmf", "mlp", "neumf")


def default_data_dir() -> Path:
    env = os.environ.get("DOTREC_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def ncf_epoch(
    name: str,
    factor: int,
    batch: int,
    train: Interactions,
    frac: float,
    threads: int,
    torch_options: dict[str, str],
) -> float:
    """Seconds of one full-data epoch of GMF/MLP (Adam) or pretrained NeuMF (SGD), 4 negatives."""
    opts = {
        "factor": factor,
        "epochs": 1,
        "batch_size": batch,
        "n_negatives": 4,
        "threads": threads,
        **torch_options,
    }
    m = MODELS[name].from_config(opts)
    if isinstance(m, NeuMF):
        pre = {"factor": factor, "epochs": 0, "threads": threads, **torch_options}
        m.set_pretrained(
            MODELS["gmf"].from_config(pre).fit(train), MODELS["mlp"].from_config(pre).fit(train)
        )
    return timed(lambda: m.fit(train))[0] / frac


def dot_epoch(model: str, size: int, train: Interactions, threads: int) -> float:
    """Seconds of one epoch of MF (8 negatives) or iALS at the published settings."""
    opts = {
        **reference(model),
        "epochs": 1,
        "embedding_dim": width_for_size(model, size),
        "threads": threads,
    }
    return timed(lambda: MODELS[model](**opts).fit(train))[0]


def draw(model: str, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` configurations drawn uniformly from the model's search space."""
    r = rng(seed, f"study_cost_{model}")
    out = []
    for _ in range(n):
        cfg: dict[str, Any] = {}
        for name, p in space(model).items():
            if isinstance(p, Float):
                cfg[name] = (
                    float(np.exp(r.uniform(np.log(p.low), np.log(p.high))))
                    if p.log
                    else float(r.uniform(p.low, p.high))
                )
            elif isinstance(p, Int):
                cfg[name] = (
                    int(round(np.exp(r.uniform(np.log(p.low), np.log(p.high + 1))) - 0.5))
                    if p.log
                    else int(r.integers(p.low, p.high + 1))
                )
                cfg[name] = min(max(cfg[name], p.low), p.high)
            else:
                assert isinstance(p, Choice)
                cfg[name] = p.choices[int(r.integers(len(p.choices)))]
        out.append(cfg)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    p.add_argument("--dataset", default="ml-1m")
    p.add_argument("--models", default="mf,ials,gmf,mlp,neumf")
    p.add_argument("--dims", default="16,32,64,128,192")
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument(
        "--sample",
        type=float,
        default=0.1,
        help="Fraction of training pairs the NCF epochs are timed on.",
    )
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument(
        "--pruned",
        type=float,
        default=0.4,
        help="Assumed fraction of trials pruned after a third of their epochs.",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--optimizer",
        choices=("adam", "lazy_adam"),
        default="adam",
        help="Optimizer of GMF, MLP and NeuMF (dotrec study --optimizer).",
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="Precision of the MLP towers (dotrec study --precision).",
    )
    p.add_argument("--json", type=Path)
    p.add_argument(
        "--epochs-from",
        type=Path,
        help="A --json record whose epoch and evaluation times to reuse (nothing is timed).",
    )
    p.add_argument(
        "--runs-from",
        type=Path,
        help="The output folder of a study that has begun: price its cells by the trials run.",
    )
    a = p.parse_args(argv)
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    dims = [int(d) for d in a.dims.split(",")]
    if a.epochs_from:
        old = json.loads(a.epochs_from.read_text())
        torch_options = old["torch_options"]
        t = {m: {int(d): row for d, row in sizes.items()} for m, sizes in old["epochs"].items()}
        print(f"epoch times from {a.epochs_from} (NCF {torch_options})", flush=True)
    else:
        torch_options = {"optimizer": a.optimizer, "precision": a.precision}
        t = measure(a, models, dims, torch_options)
    if a.runs_from:
        from_runs(a, models, dims, t)
    else:
        estimate(a, models, dims, t, torch_options)


def measure(
    a: argparse.Namespace, models: list[str], dims: list[int], torch_options: dict[str, str]
) -> dict[str, dict[int, dict[str, float]]]:
    """Step 1: seconds per epoch (and per holdout evaluation) of every model and size."""
    print(machine_line() + f" | threads {a.threads} | NCF {a.optimizer} {a.precision}", flush=True)
    split = load_dataset(a.dataset, a.data_dir)
    train = split.train
    holdout = split.holdout(0)
    sample = train.select(rng(0, "study_cost_sample").random(len(train)) < a.sample)
    frac = len(sample) / len(train)
    for name in NCF[:2]:  # warm-up: torch's lazy imports, numba's compilation
        MODELS[name].from_config({"epochs": 1, "threads": a.threads, **torch_options}).fit(sample)
    print(
        f"{split.name}: {len(train)} training pairs; NCF epochs timed on {len(sample)} "
        f"({frac:.1%}) and scaled up",
        flush=True,
    )

    # 1. Epoch and evaluation times. NeuMF's rows also time the GMF and the MLP of its own
    # factor k, which its pretraining trains.
    t: dict[str, dict[int, dict[str, float]]] = {}
    print(
        f"\n{'model':6s} {'size':>4s} {'width':>5s}  epoch s (NCF: batch 256 / 1024)  "
        "holdout eval s",
        flush=True,
    )
    for model in models:
        t[model] = {}
        for size in dims:
            k = width_for_size(model, size)
            row: dict[str, float] = {}
            if model in NCF:
                parts = ("gmf", "mlp", "neumf") if model == "neumf" else (model,)
                for part in parts:
                    prefix = "" if part == model else part + "_"
                    for b in (256, 1024):
                        row[f"{prefix}b{b}"] = ncf_epoch(
                            part, k, b, sample, frac, a.threads, torch_options
                        )
            else:
                row["epoch"] = dot_epoch(model, size, train, a.threads)
            params = {**reference(model), "epochs": 1}
            if model == "neumf":
                params["pretrain_epochs"] = 1
            fitted: Model = fit_config(
                model,
                size,
                params,
                sample if model in NCF else train,
                seed=0,
                threads=a.threads,
                torch_options=torch_options,
            )
            row["eval"] = timed(lambda m=fitted: evaluate(m, holdout, protocol="sampled"))[0]
            t[model][size] = row
            ep = (
                f"{row['b256']:8.1f} / {row['b1024']:7.1f}"
                if model in NCF
                else f"{row['epoch']:8.1f}          "
            )
            extra = ""
            if model == "neumf":
                extra = (
                    f"  (pretraining GMF {row['gmf_b256']:.1f}, MLP {row['mlp_b256']:.1f} "
                    "s/epoch at batch 256)"
                )
            print(
                f"{model:6s} {size:4d} {k:5d}  {ep}                {row['eval']:6.2f}{extra}",
                flush=True,
            )
    return t


def epoch_cost(
    t: dict[str, dict[int, dict[str, float]]],
    model: str,
    size: int,
    cfg: dict[str, Any],
    prefix: str = "",
) -> float:
    """Seconds of one epoch under configuration ``cfg`` (``prefix``: NeuMF's pretraining)."""
    row = t[model][size]
    if model in NCF:
        b = int(cfg.get("batch_size", 256))
        # t(b) = per-example part + per-step part / b, fitted on b = 256 and 1024.
        t256, t1024 = row[prefix + "b256"], row[prefix + "b1024"]
        per_step = (t256 - t1024) / (1 / 256 - 1 / 1024)
        base = max(t256 - per_step / 256 + per_step / b, 0.0)
        return base * (1 + cfg["n_negatives"]) / (1 + 4)
    if model == "mf":
        return row["epoch"] * (1 + cfg["n_negatives"]) / (1 + 8)
    return row["epoch"]


def config_cost(
    t: dict[str, dict[int, dict[str, float]]],
    model: str,
    size: int,
    cfg: dict[str, Any],
    epochs: int | None = None,
) -> float:
    """Seconds of training ``cfg`` for ``epochs`` (default its own) with a holdout evaluation
    after each; NeuMF's pretraining runs in full."""
    ev = t[model][size]["eval"]
    cost = (cfg["epochs"] if epochs is None else epochs) * (epoch_cost(t, model, size, cfg) + ev)
    if model == "neumf":
        for pre in ("gmf_", "mlp_"):
            cost += cfg["pretrain_epochs"] * epoch_cost(t, model, size, cfg, pre)
    return cost


def estimate(
    a: argparse.Namespace,
    models: list[str],
    dims: list[int],
    t: dict[str, dict[int, dict[str, float]]],
    torch_options: dict[str, str],
) -> None:
    """Steps 2 and 3: expected hours of tuning and final fits from the epoch times ``t``."""
    # 2. and 3. Tuning and final fits.
    report: dict[str, Any] = {"epochs": t, "models": {}, "torch_options": torch_options}
    print(
        f"\nexpected hours, {a.trials} trials per cell (trial 0 = published configuration), "
        f"{a.seeds} final fits per cell, {a.pruned:.0%} of trials pruned at a third"
    )
    total = 0.0
    prune = 1 - a.pruned * (2 / 3)  # pruned trials stop after a third of their epochs
    for model in models:
        cfgs = draw(model, a.draws, 0)
        tune = final = 0.0
        for size in dims:
            mean = float(np.mean([config_cost(t, model, size, c) for c in cfgs]))
            tune += prune * (config_cost(t, model, size, reference(model)) + (a.trials - 1) * mean)
            final += a.seeds * (
                config_cost(t, model, size, reference(model)) + 2 * t[model][size]["eval"]
            )
        report["models"][model] = {"tuning_h": tune / 3600, "final_h": final / 3600}
        total += tune + final
        print(
            f"  {model:6s} tuning {tune / 3600:7.1f} h  final fits {final / 3600:6.1f} h  "
            f"total {(tune + final) / 3600:7.1f} h",
            flush=True,
        )
    report["total_h"] = total / 3600
    print(f"  all    {total / 3600:.1f} h ({total / 86400:.1f} days) on this machine, one worker")
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))


def from_runs(
    a: argparse.Namespace,
    models: list[str],
    dims: list[int],
    t: dict[str, dict[int, dict[str, float]]],
) -> None:
    """Price the study in ``a.runs_from`` by the trials it ran (see the module docstring)."""
    config = StudyConfig(models=tuple(models), dims=tuple(dims), n_trials=a.trials, n_seeds=a.seeds)
    cells = {(c.model, c.size): c for c in study_status(config, a.runs_from, a.dataset)}
    storage = open_storage(default_storage(a.runs_from))

    def finished(cell: CellStatus) -> list[FrozenTrial]:
        if cell.tuning is None:
            return []
        study = optuna.load_study(study_name=cell.tuning.study_name, storage=storage)
        return first_finished(study.get_trials(deepcopy=False), a.trials)

    def price(trial: FrozenTrial, model: str, size: int) -> float:
        return config_cost(t, model, size, trial.params, epochs=len(trial.intermediate_values))

    runs = {key: finished(cell) for key, cell in cells.items()}
    print(
        f"\nhours of {a.runs_from}: {a.trials} trials and {a.seeds} final fits per cell; "
        "trials run priced at the epochs they ran beside the machine time measured for them"
    )
    print(
        f"{'model':6s} {'size':>4s} {'trials':>6s} {'measured':>9s} {'priced':>7s}  "
        f"{'to come: trials':>15s} {'final fits':>10s}  (proxy for the trials to come)"
    )
    left = calibrated = 0.0
    for model in models:
        # The model's measured / priced machine time over its trials run so far: the pricing's
        # error on this machine, applied to what is to come for the calibrated total.
        spent = [(machine_seconds(tr), price(tr, model, d)) for d in dims for tr in runs[model, d]]
        priced_all = sum(p for _, p in spent)
        ratio = sum(m for m, _ in spent) / priced_all if priced_all > 60 else 1.0
        own = [(len(runs[model, d]), -abs(d), d) for d in dims]
        n_proxy, _, proxy = max(own)
        proxy_cell = cells[model, proxy]
        for size in dims:
            cell, done = cells[model, size], runs[model, size]
            measured = sum(map(machine_seconds, done)) if done else 0.0
            priced = sum(price(trial, model, size) for trial in done)
            if n_proxy:
                sequence = [price(trial, model, size) for trial in runs[model, proxy]]
                mean = float(np.mean(sequence))
                to_come = sum(
                    sequence[i] if i < len(sequence) else mean for i in range(len(done), a.trials)
                )
            else:  # nothing of this model has run: uniform draws, as the plain estimate
                cfgs = draw(model, a.draws, 0)
                mean = float(np.mean([config_cost(t, model, size, c) for c in cfgs]))
                to_come = (a.trials - len(done)) * mean * (1 - a.pruned * (2 / 3))
            best = (cell if cell.tuning and cell.tuning.done else proxy_cell).tuning
            params = best.best_params if best and best.best_params else reference(model)
            finals = (a.seeds - cell.seeds) * (
                config_cost(t, model, size, params) + 2 * t[model][size]["eval"]
            )
            left += to_come + finals
            calibrated += ratio * (to_come + finals)
            source = f"{model} {proxy}, {n_proxy} trials" if n_proxy else "uniform draws"
            print(
                f"{model:6s} {size:4d} {len(done):6d} {measured / 3600:8.2f}h {priced / 3600:6.2f}h"
                f"  {to_come / 3600:14.2f}h {finals / 3600:9.2f}h  ({source})",
                flush=True,
            )
        print(f"       measured / priced over the trials of {model} run so far: {ratio:.2f}")
    storage.engine.dispose()
    print(f"  to come: {left / 3600:.1f} h ({left / 86400:.1f} days) on this machine, one worker")
    print(
        f"  to come, each model's priced hours times its measured / priced ratio: "
        f"{calibrated / 3600:.1f} h ({calibrated / 86400:.1f} days)"
    )


if __name__ == "__main__":
    main()

"""Benchmark GMF, MLP and NeuMF (He et al., WWW 2017) on the NCF ml-1m split.

Sections (``--sections``, comma-separated):

quality
    For each seed: GMF(k), MLP(k) with the tower [4k, 2k, k], and NeuMF(k) initialised from that
    seed's GMF and MLP and trained with SGD (the paper's pretraining), with the NCF settings
    (4 negatives, batch 256, Adam lr 0.001, ``--epochs``). Prints sampled (NCF protocol, 99
    negatives) and full-catalog HR/NDCG@10 per seed and their means, the fit time per model and
    per epoch, and the wall time of the whole NeuMF-with-pretraining pipeline next to MF's
    (``MatrixFactorization`` of width k with its defaults, ``--mf-epochs`` epochs, and the same
    thread count).
speed
    Seconds per epoch and training examples per second of GMF, MLP and NeuMF at each
    ``--speed-factors`` k (default 8, 16, 32, 64), for each optimizer (dense ``adam``,
    ``lazy_adam``) and precision (``fp32``, ``bf16`` for the MLP towers), NeuMF also in its
    pretrained (SGD) phase, and MF's epoch at d = k as the yardstick: one full epoch on the
    whole training set after a warm-up epoch on 2% of it.
latency
    ``score_all`` latency for one user over the whole catalog (median over random users, after
    the one-off precomputation of the item tables, which is reported separately).

Example (the full protocol, unattended, a few hours on 2 cores)::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/ncf.py --seeds 0,1,2 --epochs 20 --threads 2 \\
        --json runs/ncf.json

A shorter run: ``--seeds 0 --epochs 5 --models gmf --sections quality``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from dotrec.data.interactions import Interactions
from dotrec.data.registry import load_dataset
from dotrec.data.splits import Split
from dotrec.eval.protocols import evaluate
from dotrec.machine import machine_info, machine_line
from dotrec.models import GMF, MLP, MatrixFactorization, Model, NeuMF
from dotrec.random import rng
from dotrec.train import select_epochs, with_epochs

#: The bands for ml-1m at k = 64 (mean of 3 seeds, sampled protocol) of issue #12, which every
#: optimizer and precision must keep.
TARGETS = {
    "gmf": {"hr@10": 0.685, "ndcg@10": 0.400},
    "mlp": {"hr@10": 0.675, "ndcg@10": 0.390},
    "neumf": {"hr@10": 0.712, "ndcg@10": 0.427},
}


def default_data_dir() -> Path:
    env = os.environ.get("DOTREC_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def log(msg: str) -> None:
    print(msg, flush=True)


def summarize(model: Model, split: Split) -> dict[str, Any]:
    start = time.perf_counter()
    res = evaluate(model, split, protocol="both", k=10)
    s, f = res["sampled"].summary(), res["full"].summary()
    return {
        "sampled": {"hr@10": s["hr@10"], "ndcg@10": s["ndcg@10"]},
        "full": {"hr@10": f["hr@10"], "ndcg@10": f["ndcg@10"], "mrr": f["mrr"]},
        "fit_seconds": model.fit_info.get("fit_seconds", float("nan")),
        "epoch_seconds": (
            model.fit_info.get("fit_seconds", float("nan")) / max(1, model.fit_info["epochs"])
        ),
        "loss": model.fit_info.get("loss"),
        "eval_seconds": time.perf_counter() - start,
    }


def fit_logged(model: Model, split: Split, label: str, trace: bool) -> Model:
    """Fit with one log line per epoch (sampled HR@10 too with ``trace``)."""
    last = [time.perf_counter()]

    def on_epoch(epoch: int, m: Model) -> None:
        now = time.perf_counter()
        extra = ""
        if trace:
            s = evaluate(m, split, protocol="sampled", k=10)["sampled"].summary()
            extra = f"  sampled HR@10 {s['hr@10']:.4f} NDCG@10 {s['ndcg@10']:.4f}"
        log(
            f"  {label} epoch {epoch}: loss {m.fit_info.get('loss', float('nan')):.4f}  "
            f"{now - last[0]:.1f}s{extra}"
        )
        last[0] = time.perf_counter()

    return model.fit(split.train, on_epoch=on_epoch)


def log_holdout(label: str, epoch: int, value: float) -> None:
    log(f"  {label} epoch {epoch}: holdout NDCG@10 {value:.4f}")


def build(name: str, epochs: int, seed: int, args: argparse.Namespace) -> Model:
    """A GMF, MLP or NeuMF with the NCF settings (4 negatives, batch 256, Adam lr 0.001)."""
    common = {
        "factor": args.factor,
        "epochs": epochs,
        "batch_size": 256,
        "n_negatives": 4,
        "seed": seed,
        "threads": args.threads,
        "precision": args.precision,
        "optimizer": args.optimizer,
        "device": args.device,
    }
    if name == "neumf":
        return NeuMF(learning_rate=args.neumf_lr, **common)
    return (GMF if name == "gmf" else MLP)(learning_rate=0.001, **common)


def run_quality(split: Split, args: argparse.Namespace) -> dict[str, Any]:
    k, models = args.factor, args.models
    neumf_max = args.epochs if args.neumf_epochs is None else args.neumf_epochs
    per_seed: dict[str, list[dict[str, Any]]] = {}
    for seed in args.seeds:
        row: dict[str, dict[str, Any]] = {}
        need_pre = "neumf" in models
        epochs = {"gmf": args.epochs, "mlp": args.epochs, "neumf": neumf_max}
        if args.select == "given":
            epochs.update(args.given_epochs[seed])
        selection_seconds = 0.0
        fitted: dict[str, Model] = {}
        for name in ("gmf", "mlp", "neumf"):
            if not (name in models or (need_pre and name != "neumf")):
                continue
            m = build(name, epochs[name], seed, args)
            if name == "neumf":
                m.set_pretrained(fitted["gmf"], fitted["mlp"])  # type: ignore[attr-defined]
            if args.select == "holdout":
                # dotrec.train's early stopping, as `dotrec train --early-stopping` runs it: the
                # epoch count is chosen on the training data's holdout (a NeuMF's pretrained
                # GMF and MLP are refitted there with their chosen epochs; epoch 0 is a
                # candidate), then the model is refitted on all the training data.
                start = time.perf_counter()
                selection = select_epochs(
                    m,
                    split,
                    patience=args.patience,
                    seed=seed,
                    on_epoch=partial(log_holdout, f"{name} seed {seed} holdout"),
                )
                selection_seconds += time.perf_counter() - start
                epochs[name] = selection.best_epoch
                log(
                    f"  {name} seed {seed} holdout: best holdout epoch {selection.best_epoch} "
                    f"(NDCG@10 {selection.best_value:.4f})"
                )
                m = with_epochs(m, selection.best_epoch)
            fitted[name] = fit_logged(m, split, f"{name} seed {seed}", args.trace)
            row[name] = {**summarize(fitted[name], split), "epochs": epochs[name]}
        if need_pre:
            row["neumf"]["pipeline_seconds"] = sum(
                row[n]["fit_seconds"] if n in row else fitted[n].fit_info["fit_seconds"]
                for n in ("gmf", "mlp", "neumf")
            )
            row["neumf"]["selection_seconds"] = selection_seconds
        if "mf" in models:
            mf = MatrixFactorization(
                embedding_dim=k, epochs=args.mf_epochs, seed=seed, threads=args.threads
            ).fit(split.train)
            row["mf"] = {**summarize(mf, split), "epochs": args.mf_epochs}
        for name, r in row.items():
            per_seed.setdefault(name, []).append({"seed": seed, **r})
            s, f = r["sampled"], r["full"]
            log(
                f"{name:6s} seed {seed}: sampled HR@10 {s['hr@10']:.4f} NDCG@10 "
                f"{s['ndcg@10']:.4f} | full HR@10 {f['hr@10']:.4f} NDCG@10 {f['ndcg@10']:.4f} "
                f"MRR {f['mrr']:.4f} | {r['epochs']} epochs, fit {r['fit_seconds']:.0f}s "
                f"({r['epoch_seconds']:.1f}s/epoch)"
            )
    means: dict[str, Any] = {}
    how = {
        "holdout": "epochs picked on the training data's holdout",
        "fixed": f"{args.epochs} epochs",
        "given": f"epochs picked on the training data's holdout by {args.epochs_from}, "
        "refitted on all the training data",
    }[args.select]
    log(
        f"\nmeans over seeds {args.seeds} (k={k}, {how}; sampled = NCF protocol with 99 "
        "negatives; full = all non-training items)"
    )
    for name, rows in per_seed.items():
        mean: dict[str, Any] = {
            f"{p} {key}": statistics.fmean(r[p][key] for r in rows)
            for p in ("sampled", "full")
            for key in rows[0][p]
        }
        mean["fit_seconds"] = statistics.fmean(r["fit_seconds"] for r in rows)
        mean["epochs"] = [r["epochs"] for r in rows]
        if name == "neumf":
            mean["pipeline_seconds"] = statistics.fmean(r["pipeline_seconds"] for r in rows)
        means[name] = mean
        targets = TARGETS.get(name, {}) if (split.name, k) == ("ml-1m", 64) else {}
        verdict = "".join(
            f"  [{key} target {t}: {'ok' if mean['sampled ' + key] >= t else 'BELOW'}]"
            for key, t in targets.items()
        )
        log(
            f"{name:6s} sampled HR@10 {mean['sampled hr@10']:.4f} NDCG@10 "
            f"{mean['sampled ndcg@10']:.4f} | full HR@10 {mean['full hr@10']:.4f} NDCG@10 "
            f"{mean['full ndcg@10']:.4f} MRR {mean['full mrr']:.4f} | epochs {mean['epochs']} "
            f"fit {mean['fit_seconds']:.0f}s" + verdict
        )
    if "neumf" in means:
        line = (
            f"wall time, NeuMF with pretraining (GMF + MLP + NeuMF fits): "
            f"{means['neumf']['pipeline_seconds']:.0f}s"
        )
        if args.select == "holdout" and "selection_seconds" in per_seed["neumf"][0]:
            sel = statistics.fmean(r["selection_seconds"] for r in per_seed["neumf"])
            line += f" (+ {sel:.0f}s of epoch selection on the holdout)"
        if "mf" in means:
            line += f"; MF: {means['mf']['fit_seconds']:.0f}s"
        log(line)
    return {"per_seed": per_seed, "means": means}


def timed_epoch(model: Model, train: Interactions) -> dict[str, float]:
    """Seconds of one training epoch (sampling and shuffling included) and examples/s."""
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(train)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = len(train) * (1 + model.n_negatives) * model.epochs  # type: ignore[attr-defined]
    return {"epoch_seconds": wall, "examples_per_s": n / wall, "cpu_seconds": cpu}


def run_speed(split: Split, args: argparse.Namespace) -> dict[str, Any]:
    """One full epoch per model, size, optimizer and precision, after a warm-up epoch."""
    train = split.train
    warm = train.select(rng(0, "bench_speed_warmup").random(len(train)) < 0.02)
    out: dict[str, Any] = {}
    log(
        f"\ntraining speed: one epoch over all {len(train)} training pairs "
        f"({len(train) * 5} examples, batch 256), {args.threads} thread(s), after a warm-up "
        "epoch on 2% of them; CPU seconds beside the wall time (the machine may be shared)"
    )

    def measure(label: str, make: Callable[[], Model], pretrained: bool = False) -> None:
        for data in (warm, train):
            m = make()
            if pretrained:
                assert isinstance(m, NeuMF)
                m.set_pretrained(
                    GMF(factor=m.factor, epochs=0, device=args.device).fit(data),
                    MLP(factor=m.factor, epochs=0, device=args.device).fit(data),
                )
            r = timed_epoch(m, data)
        out[label] = r
        log(
            f"  {label:42s} {r['epoch_seconds']:7.2f} s/epoch {r['examples_per_s']:10.0f} "
            f"examples/s (CPU {r['cpu_seconds']:.1f} s)"
        )

    for k in args.speed_factors:
        for cls in (GMF, MLP, NeuMF):
            for opt in ("adam", "lazy_adam"):
                for prec in ("fp32", "bf16") if cls is not GMF else ("fp32",):
                    measure(
                        f"{cls.name} k={k} {opt} {prec}",
                        partial(
                            cls,
                            factor=k,
                            epochs=1,
                            threads=args.threads,
                            optimizer=opt,
                            precision=prec,
                            device=args.device,
                        ),
                    )
        for prec in ("fp32", "bf16"):
            measure(
                f"neumf k={k} pretrained (SGD) {prec}",
                partial(
                    NeuMF,
                    factor=k,
                    epochs=1,
                    threads=args.threads,
                    precision=prec,
                    device=args.device,
                ),
                pretrained=True,
            )
        measure(
            f"mf d={k} (yardstick, 8 negatives)",
            partial(MatrixFactorization, embedding_dim=k, epochs=1, threads=args.threads),
        )
    return out


def run_latency(split: Split, args: argparse.Namespace) -> dict[str, Any]:
    users = rng(0, "bench_latency_users").integers(0, split.n_users, size=200)
    out = {}
    log(f"\nscore_all latency, one user x {split.n_items} items (median of {len(users)} users)")
    for cls in (GMF, MLP, NeuMF):
        m = cls(factor=args.factor, epochs=0).fit(split.train)
        start = time.perf_counter()
        m.score_all(users[:1])
        first = time.perf_counter() - start
        times = []
        for u in users:
            start = time.perf_counter()
            m.score_all([u])
            times.append(time.perf_counter() - start)
        med = statistics.median(times)
        out[f"{cls.name} k={args.factor}"] = {"median_ms": med * 1e3, "first_call_ms": first * 1e3}
        log(
            f"  {cls.name:6s} k={args.factor}: {med * 1e3:.2f} ms (first call, with the "
            f"table precomputation: {first * 1e3:.1f} ms)"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    p.add_argument("--dataset", default="ml-1m")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--factor", type=int, default=64)
    p.add_argument(
        "--models",
        default="gmf,mlp,neumf,mf",
        help="gmf, mlp, neumf (pretrained from that seed's GMF and MLP), mf",
    )
    p.add_argument("--neumf-lr", type=float, default=0.001, help="NeuMF SGD learning rate.")
    p.add_argument(
        "--neumf-epochs",
        type=int,
        default=None,
        help="NeuMF epochs, or their maximum with --select holdout (default: --epochs).",
    )
    p.add_argument(
        "--select",
        choices=("holdout", "fixed", "given"),
        default="holdout",
        help="holdout: pick each model's epoch count (at most --epochs) by NDCG@10 "
        "on the training data's leave-one-out holdout, then refit on all the "
        "training data (dotrec.train's early stopping, as `dotrec train "
        "--early-stopping` does); "
        "fixed: --epochs; given: the epochs a previous holdout run "
        "picked (--epochs-from its --json), refitted on all the training data: "
        "the same models as --select holdout, without repeating the selection.",
    )
    p.add_argument(
        "--epochs-from",
        type=Path,
        help="JSON written by an earlier --select holdout run.",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=4,
        help="Stop a selection fit after this many epochs without improvement.",
    )
    p.add_argument(
        "--mf-epochs",
        type=int,
        default=256,
        help="Epochs of the MF reference run (Rendle et al.'s ml-1m setting).",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--optimizer",
        choices=("adam", "lazy_adam"),
        default="adam",
        help="Optimizer of GMF and MLP in the quality section.",
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="Precision of the MLP towers in the quality section.",
    )
    p.add_argument(
        "--speed-factors", default="8,16,32,64", help="Predictive factors k of the speed section."
    )
    p.add_argument(
        "--device",
        choices=("cpu", "cuda", "auto"),
        default="cpu",
        help="Where GMF, MLP and NeuMF train (quality and speed sections).",
    )
    p.add_argument("--sections", default="quality,speed,latency")
    p.add_argument("--trace", action="store_true", help="Sampled HR@10 after every epoch.")
    p.add_argument("--json", type=Path, help="Also write the results to this file.")
    args = p.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.speed_factors = [int(k) for k in args.speed_factors.split(",")]
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if (args.select == "given") != (args.epochs_from is not None):
        p.error("--select given and --epochs-from go together")
    if args.epochs_from is not None:
        earlier = json.loads(args.epochs_from.read_text())["quality"]["per_seed"]
        args.given_epochs = {}
        for name, rows in earlier.items():
            for r in rows:
                args.given_epochs.setdefault(r["seed"], {})[name] = r["epochs"]
        missing = [s for s in args.seeds if s not in args.given_epochs]
        if missing:
            p.error(f"{args.epochs_from} has no epochs for seeds {missing}")

    info = {**machine_info(), "torch_threads": args.threads}
    log(f"{machine_line()} | torch threads {args.threads}")
    log(f"argv: {' '.join(sys.argv[1:])}")
    split = load_dataset(args.dataset, args.data_dir)
    log(f"{split.name}: {split.train}")
    results: dict[str, Any] = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}}
    start = time.perf_counter()
    if "quality" in sections:
        results["quality"] = run_quality(split, args)
    if "speed" in sections:
        results["speed"] = run_speed(split, args)
    if "latency" in sections:
        results["latency"] = run_latency(split, args)
    results["wall_seconds"] = time.perf_counter() - start
    log(f"\ntotal wall time {results['wall_seconds']:.0f}s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

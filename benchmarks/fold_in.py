"""Fold-in benchmark: new users folded in from their items vs the same users trained normally.

Usage:
    python benchmarks/fold_in.py                       # mf, ials, gmf, mlp on ml-1m
    python benchmarks/fold_in.py --models mf,ials --json out.json

Protocol: 10% of ml-1m's users (seeded) are held out of training. Model A is fitted on all the
training data, model B on the training data without the held-out users. The held-out users are
then folded into B from their own training items (``Model.fold_in``, no retraining) and both
models are evaluated on those users' NCF test items (sampled: 99 negatives; full catalog), so
the figures compare the same users, test items and negatives. Model settings are the recorded
ml-1m settings of each model (MF and iALS: Rendle et al.; GMF/MLP: experiments/ncf_ml1m.md
with lazy Adam and the epochs the holdout picked there).

Data: ml-1m from --data-dir (default $DOTREC_DATA_DIR, else ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from dotrec.data.registry import load_dataset
from dotrec.data.splits import Split
from dotrec.eval.protocols import evaluate
from dotrec.machine import machine_info, machine_line
from dotrec.models import GMF, IALS, MLP, MatrixFactorization, NeuMF
from dotrec.models.base import Model
from dotrec.random import rng

ROOT = Path(__file__).resolve().parents[1]


def make(name: str, threads: int) -> Model:
    """The model with its recorded ml-1m settings."""
    if name == "mf":
        return MatrixFactorization(embedding_dim=64, epochs=256, threads=threads, seed=0)
    if name == "ials":
        return IALS(
            embedding_dim=192,
            epochs=12,
            regularization=0.007,
            unobserved_weight=0.3,
            stddev=0.1,
            threads=threads,
        )
    if name == "gmf":
        return GMF(factor=64, epochs=10, optimizer="lazy_adam", threads=threads)
    if name == "mlp":
        return MLP(factor=64, epochs=12, optimizer="lazy_adam", precision="bf16", threads=threads)
    raise SystemExit(f"unknown model {name!r}")


class Rows:
    """Scores of a fixed set of users from precomputed rows (what evaluate() needs)."""

    def __init__(self, users: np.ndarray, scores: np.ndarray) -> None:
        self.pos = {int(u): r for r, u in enumerate(users)}
        self.scores = scores

    def _rows(self, users: np.ndarray) -> np.ndarray:
        return np.array([self.pos[int(u)] for u in users])

    def score_all(self, users: np.ndarray) -> np.ndarray:
        return self.scores[self._rows(users)]

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.scores[self._rows(users), items]


def summary(model: Any, split: Split) -> dict[str, float]:
    res = evaluate(model, split, protocol="both")
    return {
        "sampled_hr@10": float(res["sampled"].hr.mean()),
        "sampled_ndcg@10": float(res["sampled"].ndcg.mean()),
        "full_hr@10": float(res["full"].hr.mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data-dir",
        default=os.environ.get("DOTREC_DATA_DIR", str(ROOT.parent / "shared" / "data")),
    )
    ap.add_argument("--dataset", default="ml-1m")
    ap.add_argument("--models", default="mf,ials,gmf,mlp")
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--steps", default=None, help="GMF/MLP/NeuMF: comma-separated L-BFGS step counts to try."
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    print(machine_line(), flush=True)
    split = load_dataset(args.dataset, args.data_dir)
    train = split.train
    n_out = int(round(args.fraction * train.n_users))
    held = np.sort(rng(args.seed, "fold_in_users").choice(train.n_users, n_out, replace=False))
    is_held = np.zeros(train.n_users, bool)
    is_held[held] = True
    reduced = train.select(~is_held[train.user_index])
    on_held = np.isin(split.test_users, held)
    sub = Split(
        train,
        split.test_users[on_held],
        split.test_items[on_held],
        split.negatives[on_held],
        name=f"{args.dataset}/held-out-users",
    )
    print(
        f"{args.dataset}: {n_out} of {train.n_users} users held out ({len(train) - len(reduced)} "
        f"training pairs), {sub.n_test} test users",
        flush=True,
    )
    out: dict[str, Any] = {"machine": machine_info(), "held_out_users": n_out, "models": {}}
    for name in args.models.split(","):
        t = time.perf_counter()
        full = make(name, args.threads).fit(train)
        fit_a = time.perf_counter() - t
        trained = summary(Rows(sub.test_users, full.score_all(sub.test_users)), sub)
        t = time.perf_counter()
        part = make(name, args.threads).fit(reduced)
        fit_b = time.perf_counter() - t
        lists = [train.items_of(int(u)) for u in sub.test_users]
        variants: list[int | None] = [None]
        if args.steps and name in ("gmf", "mlp", "neumf"):
            variants = [int(x) for x in args.steps.split(",")]
        for steps in variants:
            t = time.perf_counter()
            if steps is None:
                rows = part.fold_in(lists)
            else:
                assert isinstance(part, (GMF, MLP, NeuMF))  # only they take steps
                rows = part.fold_in(lists, steps=steps)
            fold_s = time.perf_counter() - t
            folded = summary(Rows(sub.test_users, part.score_rows(rows)), sub)
            label = name if steps is None else f"{name} steps={steps}"
            out["models"][label] = {
                "trained": trained,
                "folded_in": folded,
                "fold_in_s_per_user": fold_s / sub.n_test,
                "fit_s": [fit_a, fit_b],
            }
            print(
                f"{label}: trained sampled HR@10 {trained['sampled_hr@10']:.4f} NDCG@10 "
                f"{trained['sampled_ndcg@10']:.4f} full HR@10 {trained['full_hr@10']:.4f} | "
                f"folded in sampled HR@10 {folded['sampled_hr@10']:.4f} NDCG@10 "
                f"{folded['sampled_ndcg@10']:.4f} full HR@10 {folded['full_hr@10']:.4f} | "
                f"difference {folded['sampled_hr@10'] - trained['sampled_hr@10']:+.4f} | "
                f"fold-in {1000 * fold_s / sub.n_test:.1f} ms/user | fits {fit_a:.0f} s, "
                f"{fit_b:.0f} s",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Time the LightGCN full-ranking protocol on Gowalla: 29,858 users over 40,981 items.

Scores come from a dot-product model of width ``--dim`` with random factors (the protocol's cost
does not depend on what the factors learned) and from Popularity. Prints load, scoring and
ranking times and the machine. With ``--ncf-users N`` it also times ``score_all`` of the
learned-similarity models at size 64 (MLP k=32, NeuMF k=21; initial weights) for N test users,
on one thread and on ``--threads``: the cost of scoring a tuning holdout of N users. Run on a
quiet machine:

    python benchmarks/gowalla_eval.py [--dim 64] [--threads 2] [--ncf-users 300]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from dotrec.data.interactions import Interactions
from dotrec.data.registry import load_file_split
from dotrec.eval.ranking import evaluate_ranking
from dotrec.machine import machine_line
from dotrec.models import MLP, MatrixFactorization, NeuMF, Popularity

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data-dir",
        default=os.environ.get("DOTREC_DATA_DIR", str(ROOT.parent / "shared" / "data")),
    )
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ncf-users", type=int, default=0)
    args = ap.parse_args()
    print(machine_line(), flush=True)
    t = time.perf_counter()
    split = load_file_split("gowalla", args.data_dir)
    print(f"load: {time.perf_counter() - t:.2f} s  {split!r}", flush=True)
    mf = MatrixFactorization(embedding_dim=args.dim + 1, epochs=0, seed=0).fit(split.train)
    r = np.random.default_rng(0)
    mf.user_factors = r.standard_normal(mf.user_factors.shape).astype(np.float32)
    mf.item_factors = r.standard_normal(mf.item_factors.shape).astype(np.float32)
    for name, model in (("popularity", Popularity().fit(split.train)), (f"dot d={args.dim}", mf)):
        evaluate_ranking(model, split, k=20, threads=args.threads)  # compile, warm caches
        t = time.perf_counter()
        res = evaluate_ranking(model, split, k=20, threads=args.threads)
        s = res.summary()
        print(
            f"{name}: {time.perf_counter() - t:.2f} s for {s['users']} users "
            f"(recall@20 {s['recall@20']:.4f}, ndcg@20 {s['ndcg@20']:.4f})",
            flush=True,
        )
    if args.ncf_users:
        time_ncf(split.train, split.test_users[: args.ncf_users], args.threads)


def time_ncf(train: Interactions, users: np.ndarray, threads: int) -> None:
    """Seconds of MLP and NeuMF ``score_all`` for ``users``, per thread count."""
    for cls, factor in ((MLP, 32), (NeuMF, 21)):
        for n_threads in sorted({1, threads}):
            model = cls(factor=factor, epochs=0, threads=n_threads).fit(train)
            model.score_all(users[:2])  # the item tables
            t = time.perf_counter()
            model.score_all(users)
            dt = time.perf_counter() - t
            print(
                f"{cls.name} k={factor} threads={n_threads}: score_all {dt:.2f} s for "
                f"{len(users)} users ({dt / len(users) * 3000:.1f} s per 3,000)",
                flush=True,
            )


if __name__ == "__main__":
    main()

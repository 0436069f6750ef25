"""Time the LightGCN full-ranking protocol on Gowalla: 29,858 users over 40,981 items.

Scores come from a dot-product model of width ``--dim`` with random factors (the protocol's cost
does not depend on what the factors learned) and from Popularity. Prints load, scoring and
ranking times and the machine. Run on a quiet machine:

    python benchmarks/gowalla_eval.py [--dim 64] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from dotrec.data.registry import load_file_split
from dotrec.eval.ranking import evaluate_ranking
from dotrec.machine import machine_line
from dotrec.models import MatrixFactorization, Popularity

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data-dir",
        default=os.environ.get("DOTREC_DATA_DIR", str(ROOT.parent / "shared" / "data")),
    )
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
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


if __name__ == "__main__":
    main()

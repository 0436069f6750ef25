"""MF benchmark: SGD throughput, evaluation speed, and ml-1m quality (Rendle et al. settings).

Usage:
    python benchmarks/mf.py                      # everything (quality: 3 seeds x dims 64,192)
    python benchmarks/mf.py --skip-quality       # speed only (a minute)
    python benchmarks/mf.py --dims 64 --seeds 1  # one paper run: quality and its fit time

Throughput is SGD updates/s (one update = one labelled example) of short fits at dims 16, 64
and 192 with 1 and 2 threads, in total and per core (per thread). The machine may be shared, so
the load average is printed before and after each section.

Data: ml-1m from --data-dir (default $DOTREC_DATA_DIR, else ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from dotrec.data.registry import load_dataset
from dotrec.data.splits import Split
from dotrec.eval.protocols import evaluate_full, evaluate_sampled
from dotrec.machine import machine_info, machine_line
from dotrec.models import MatrixFactorization

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    """The 1-minute load average, to judge how quiet the machine was."""
    return f"{os.getloadavg()[0]:.2f}"


def throughput(split: Split, dim: int, threads: int, epochs: int = 3) -> float:
    """SGD updates per second (one update = one labelled example) of a short fit."""
    m = MatrixFactorization(embedding_dim=dim, epochs=epochs, threads=threads, seed=0)
    t = time.perf_counter()
    m.fit(split.train)
    dt = time.perf_counter() - t
    return epochs * len(split.train) * (m.n_negatives + 1) / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data-dir",
        default=os.environ.get("DOTREC_DATA_DIR", str(ROOT.parent / "shared" / "data")),
    )
    ap.add_argument("--dims", default="64,192")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = ap.parse_args()

    print(machine_line(), flush=True)
    split = load_dataset("ml-1m", args.data_dir)
    print(
        f"ml-1m: {split.n_users} users, {split.n_items} items, "
        f"{split.train.n_interactions} training positives",
        flush=True,
    )
    out: dict[str, object] = {"machine": machine_info()}

    MatrixFactorization(embedding_dim=16, epochs=1, threads=1).fit(split.train)  # JIT warm-up
    print(f"load average before the speed runs: {load()}", flush=True)
    speed = {}
    for dim in (16, 64, 192):
        for threads in (1, 2):
            ups = throughput(split, dim, threads)
            speed[f"dim{dim}_threads{threads}"] = ups
            print(
                f"SGD throughput dim {dim:3d}, {threads} thread(s): {ups / 1e6:6.1f} M "
                f"updates/s ({ups / threads / 1e6:.1f} M per core)",
                flush=True,
            )
    out["throughput"] = speed
    print(f"load average after the speed runs: {load()}", flush=True)

    m = MatrixFactorization(embedding_dim=64, epochs=1, threads=args.threads).fit(split.train)
    evaluate_sampled(m, split)
    evaluate_full(m, split)
    t = time.perf_counter()
    evaluate_sampled(m, split)
    ts = time.perf_counter() - t
    t = time.perf_counter()
    evaluate_full(m, split)
    tf = time.perf_counter() - t
    print(
        f"evaluation, {split.n_test} users, dim 64: sampled {ts:.3f} s, full catalog {tf:.3f} s",
        flush=True,
    )
    out["eval_seconds"] = {"sampled": ts, "full": tf}

    if not args.skip_quality:
        print(f"load average before the quality runs: {load()}", flush=True)
        quality = {}
        for dim in (int(d) for d in args.dims.split(",")):
            runs = []
            for seed in range(args.seeds):
                m = MatrixFactorization(
                    embedding_dim=dim,
                    epochs=args.epochs,
                    learning_rate=0.002,
                    regularization=0.005,
                    n_negatives=8,
                    stddev=0.1,
                    seed=seed,
                    threads=args.threads,
                )
                m.fit(split.train)
                s = evaluate_sampled(m, split).summary()
                f = evaluate_full(m, split).summary()
                fit_s = m.fit_info["fit_seconds"]
                runs.append(
                    {
                        "seed": seed,
                        "fit_seconds": fit_s,
                        "updates_per_s": args.epochs
                        * len(split.train)
                        * (m.n_negatives + 1)
                        / fit_s,
                        "sampled_hr@10": s["hr@10"],
                        "sampled_ndcg@10": s["ndcg@10"],
                        "full_hr@10": f["hr@10"],
                        "full_ndcg@10": f["ndcg@10"],
                        "full_mrr": f["mrr"],
                    }
                )
                r = runs[-1]
                print(
                    f"dim {dim} seed {seed}: sampled HR@10 {r['sampled_hr@10']:.4f} "
                    f"NDCG@10 {r['sampled_ndcg@10']:.4f} | full HR@10 {r['full_hr@10']:.4f} "
                    f"NDCG@10 {r['full_ndcg@10']:.4f} MRR {r['full_mrr']:.4f} | "
                    f"fit {fit_s:.0f} s ({r['updates_per_s'] / 1e6:.1f} M updates/s, "
                    f"{args.threads} threads, load {load()})",
                    flush=True,
                )
            keys = [k for k in runs[0] if k != "seed"]
            mean = {k: float(np.mean([r[k] for r in runs])) for k in keys}
            quality[f"dim{dim}"] = {"runs": runs, "mean": mean}
            print(
                f"dim {dim} mean of {len(runs)} seeds: sampled HR@10 "
                f"{mean['sampled_hr@10']:.4f} NDCG@10 {mean['sampled_ndcg@10']:.4f} | full "
                f"HR@10 {mean['full_hr@10']:.4f} NDCG@10 {mean['full_ndcg@10']:.4f} | fit "
                f"{mean['fit_seconds']:.0f} s per run",
                flush=True,
            )
        out["quality"] = quality
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Serving cost: MIPS (exact, HNSW, IVF) vs NeuMF whole-catalog scoring, by catalog size.

Usage:
    python benchmarks/serving.py --out results/serving                # 1e4, 1e5, 1e6 items
    python benchmarks/serving.py --sizes 1e4,1e5,1e6,4e6 --out ...   # 4e6 if memory allows
    python benchmarks/serving.py --model MODEL_DIR --out ...          # your model's factors

A thin wrapper over ``dotrec bench serving`` (:mod:`dotrec.bench.serving`) that also prints
the machine and the thread settings. Single-query latency runs on 1 thread, builds and batched
search on ``--threads``, for every method alike. Timings on a shared machine are inflated by
the other jobs; the JSON records the load average around each catalog size.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before faiss / torch load OpenMP

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

from dotrec.bench.serving import (  # noqa: E402
    ServingBenchConfig,
    parse_sizes,  # noqa: E402
    run_serving_bench,
    summary_lines,
    table_markdown,
    write_reports,
)
from dotrec.machine import machine_line  # noqa: E402
from dotrec.models import DotProductModel, load_model  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--sizes", default="1e4,1e5,1e6")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--methods", default="exact,hnsw,ivf,neumf")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--recall-queries", type=int, default=1000)
    p.add_argument("--latency-queries", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    cfg = ServingBenchConfig(
        sizes=parse_sizes(a.sizes),
        dim=a.dim,
        threads=a.threads,
        methods=tuple(m for m in a.methods.split(",") if m),
        recall_queries=a.recall_queries,
        latency_queries=a.latency_queries,
        seed=a.seed,
    )
    print(machine_line())
    print(
        f"threads: single-query latency 1 (numba, faiss/OpenMP, BLAS, torch); builds and "
        f"batched search {cfg.threads}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )
    model = None if a.model is None else load_model(a.model)
    if model is not None and not isinstance(model, DotProductModel):
        raise SystemExit(f"{a.model}: a {model.name} model has no item vectors to index")
    res = run_serving_bench(
        cfg, model, source_name=str(a.model or ""), log=lambda msg: print(msg, flush=True)
    )
    paths = write_reports(res, a.out)
    print()
    print(table_markdown(res))
    print()
    for line in summary_lines(res):
        print(line)
    print("wrote " + ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()

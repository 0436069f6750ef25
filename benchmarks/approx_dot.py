"""approx-dot benchmark: the default grid (timed) and the cost of the paper's full grid.

Usage:
    python benchmarks/approx_dot.py                # default grid + step times + paper-grid cost
    python benchmarks/approx_dot.py --skip-grid    # step times and paper-grid cost only (~1 min)

The default grid runs in a fresh temporary directory (so nothing is resumed) unless --out names
one. Step times are measured with the experiment's own trainer (1 thread, CPU) for every (d, m)
of the paper's grid and turned into that grid's expected cost; CPU seconds are reported next to
wall seconds because other jobs on a shared machine inflate the wall clock.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is loaded

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from dotrec.approx import GridSpec, aggregate, make_dataset, run_grid, trends, verdict  # noqa: E402
from dotrec.approx.data import PAIRS_PER_USER, TEST_FRACTION  # noqa: E402
from dotrec.approx.mlp import train_mlp  # noqa: E402
from dotrec.approx.report import write_outputs  # noqa: E402
from dotrec.machine import machine_info, machine_line  # noqa: E402

PAPER_DIMS = (16, 32, 64, 128)
PAPER_USERS = (4000, 8000, 16000, 32000, 64000, 128000)
PAPER_MULTS = (1, 2, 4)
PAPER_EPOCHS = 32


def steps_per_epoch(n_users: int, batch_size: int = 256) -> int:
    """Mini-batches per epoch for ``n_users`` (90 % of 100 pairs per user)."""
    n_train = PAIRS_PER_USER * n_users - int(round(TEST_FRACTION * PAIRS_PER_USER * n_users))
    return math.ceil(n_train / batch_size)


def run_default_grid(out: Path, threads: int) -> dict[str, object]:
    spec = GridSpec()
    wall, cpu = time.perf_counter(), time.process_time()
    resumed = 0

    def on_run(key, record, cached) -> None:  # type: ignore[no-untyped-def]
        nonlocal resumed
        resumed += cached
        print(
            f"  d={key.d:3d} users={key.n_users:6d} m={key.first_layer_mult} "
            f"repeat={key.repeat}: MLP test {record['mlp_test']:.4f} dot "
            f"{record['dot_test']:.4f} zero {record['zero_test']:.4f} "
            f"({record['seconds']:.1f} s wall, {record['cpu_seconds']:.1f} s CPU"
            f"{', resumed' if cached else ''})",
            flush=True,
        )

    records = run_grid(spec, out, threads=threads, on_run=on_run)
    write_outputs(records, out, spec, "cpu")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    cells = aggregate(records)
    print(
        f"default grid: {len(records)} runs ({resumed} resumed) in {wall:.0f} s wall, "
        f"{cpu:.0f} s CPU; outputs in {out}"
    )
    print(
        f"{'m':>2} {'d':>4} {'users':>6} {'MLP train':>16} {'MLP test':>16} {'MLP fresh':>16} "
        f"{'dot test':>8} {'zero test':>9} {'excess test':>16}"
    )
    for c in cells:
        pm = {
            k: f"{c[k + '_mean']:.4f} ± {c[k + '_std']:.4f}"
            for k in ("mlp_train", "mlp_test", "mlp_fresh", "excess_test")
        }
        print(
            f"{c['first_layer_mult']:>2} {c['d']:>4} {c['n_users']:>6} {pm['mlp_train']:>16} "
            f"{pm['mlp_test']:>16} {pm['mlp_fresh']:>16} {c['dot_test_mean']:>8.4f} "
            f"{c['zero_test_mean']:>9.4f} {pm['excess_test']:>16}"
        )
    print(f"verdict: this grid {verdict(trends(cells))}")
    return {"wall_seconds": wall, "cpu_seconds": cpu, "resumed": resumed, "cells": cells}


def step_times(threads: int) -> dict[str, float]:
    """CPU milliseconds per training step (incl. a share of evaluation) for each (d, m)."""
    out = {}
    n_users, epochs = 1000, 2
    train_mlp(make_dataset(4, 200, seed=0, n_fresh=100), 1, seed=0, epochs=1)  # warm-up
    for d in PAPER_DIMS:
        data = make_dataset(d, n_users, seed=0, n_fresh=1000)
        for m in PAPER_MULTS:
            fit = train_mlp(data, m, seed=0, epochs=epochs, threads=threads)
            ms = 1e3 * fit.cpu_seconds / (epochs * steps_per_epoch(n_users))
            out[f"d={d},m={m}"] = ms
            print(
                f"  d={d:3d} m={m}: {ms:.3f} ms CPU per step "
                f"({1e3 * fit.seconds / (epochs * steps_per_epoch(n_users)):.3f} ms wall)",
                flush=True,
            )
    return out


def paper_grid_cost(ms: dict[str, float], repeats: int) -> dict[str, float]:
    """Expected CPU hours of the paper's grid (32 epochs) per m and in total."""
    steps = PAPER_EPOCHS * sum(steps_per_epoch(n) for n in PAPER_USERS) * repeats
    hours = {
        f"m={m}": sum(ms[f"d={d},m={m}"] for d in PAPER_DIMS) * steps / 3.6e6 for m in PAPER_MULTS
    }
    hours["total"] = sum(hours.values())
    for k, h in hours.items():
        print(f"  paper grid ({repeats} repeat(s)), {k}: {h:.1f} CPU hours at 1 thread")
    return hours


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Where the default grid writes (default: a fresh temporary directory).",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="Repeats assumed for the paper grid.")
    ap.add_argument("--skip-grid", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = ap.parse_args()

    print(machine_line(), flush=True)
    result: dict[str, object] = {"machine": machine_info()}
    if not args.skip_grid:
        if args.out is None:
            with tempfile.TemporaryDirectory(prefix="approx-dot-") as tmp:
                result["default_grid"] = run_default_grid(Path(tmp), args.threads)
        else:
            result["default_grid"] = run_default_grid(args.out, args.threads)
    print("step times (paper grid configurations, n_users = 1000, 2 epochs):")
    ms = step_times(args.threads)
    result["ms_per_step_cpu"] = ms
    result["paper_grid_cpu_hours"] = paper_grid_cost(ms, args.repeats)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()

"""Check that every finished seed of a study is reproduced by ``dotrec evaluate`` on its model.

Issue #17 asks that every row of the study's report be reproducible: ``dotrec evaluate`` on a
cell's saved model gives the cell's numbers to 1e-4. The saved models (``cells/MODEL-dSIZE/
seedN/``) are too large for git, and a session's checkout starts without the ones an earlier
session trained, so the check is made where the model was trained, at the end of each part
(experiments/stop_studies.sh), and its outcome committed beside the seed's record as
``seedN.check.json``: the command, the model's arrays sha256, every metric as the record has it
and as ``evaluate`` gave it, the largest difference, and pass or fail. A seed already checked
against the same model is not evaluated again; a seed whose model is not on this machine is
listed as not checkable here, unless ``--refit`` is given: its model is then trained again the
way a reader would reproduce the row, ``dotrec train --config CELL/tuning.json --seed N``
(fits are deterministic up to float summation order: an iALS refit of ml-1m matched its record
to 1.5e-5), and checked like the others, the refit's command and seconds in the check.

    .venv/bin/python experiments/verify_cells.py --out experiments/study-ml1m --dataset ml-1m
    .venv/bin/python experiments/verify_cells.py --out experiments/study-ml1m --dataset ml-1m \\
        --refit --cells mf-d16,gmf-d16
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dotrec.artifacts import atomic_write_bytes, read_meta
from dotrec.machine import machine_label

METRICS = ("hr@10", "ndcg@10")


def _differences(recorded: dict[str, Any], evaluated: dict[str, Any]) -> dict[str, float]:
    """``protocol/metric`` -> |recorded - evaluated| for every metric of the seed's record."""
    out = {}
    for protocol, summary in recorded.items():
        for metric in METRICS:
            if metric in summary:
                got = evaluated.get(protocol, {}).get(metric)
                out[f"{protocol}/{metric}"] = (
                    float("inf") if got is None else abs(summary[metric] - got)
                )
    return out


def _dotrec() -> str:
    return str(Path(sys.executable).with_name("dotrec"))


def _run(command: list[str], record_path: Path) -> str:
    """Run a dotrec command for the seed of ``record_path``; its stdout, or exit with its stderr."""
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"{record_path}: {' '.join(command)} failed:\n{run.stderr[-2000:]}")
    return run.stdout


def refit_seed(record_path: Path, dataset: str) -> dict[str, Any]:
    """Train the seed of ``record_path`` again from its cell's tuning record, into its folder."""
    record = json.loads(record_path.read_text())
    tuning_path = record_path.with_name("tuning.json")
    best = json.loads(tuning_path.read_text())["best_params"]
    if best != record["params"]:
        sys.exit(f"{record_path}: its params differ from {tuning_path}'s best; cannot refit")
    command = [
        _dotrec(),
        "train",
        "--config",
        str(tuning_path),
        "--dataset",
        dataset,
        "--seed",
        str(record["seed"]),
        "--threads",
        str(record["config"]["threads"]),
        "--out",
        str(record_path.with_suffix("")),
        "--force",
    ]
    start = time.perf_counter()
    _run(command, record_path)
    return {"command": " ".join(["dotrec", *command[1:]]), "seconds": time.perf_counter() - start}


def check_seed(
    record_path: Path, dataset: str, tolerance: float, refit: bool = False
) -> dict[str, Any] | None:
    """Evaluate the model beside ``record_path`` and return the check (None: no model here).

    ``refit``: a seed with no model here and no passing check is trained again first.
    """
    model_dir = record_path.with_suffix("")
    check_path = record_path.with_name(f"{model_dir.name}.check.json")
    old = json.loads(check_path.read_text()) if check_path.is_file() else None
    refitted = None
    if not (model_dir / "model.json").is_file():
        if not refit or (old is not None and old.get("ok")):
            return None
        refitted = refit_seed(record_path, dataset)
    sha = read_meta(model_dir)["arrays"]["sha256"]
    if old is not None and old.get("model_sha256") == sha and old.get("ok"):
        return old
    record = json.loads(record_path.read_text())
    command = [
        _dotrec(),
        "evaluate",
        str(model_dir),
        "--dataset",
        dataset,
        "--protocol",
        "both",
        "--json",
    ]
    evaluated = json.loads(_run(command, record_path))
    diffs = _differences(record["summaries"], evaluated)
    worst = max(diffs.values())
    check = {
        "command": " ".join(["dotrec", *command[1:]]),
        "model_sha256": sha,
        "recorded": {
            p: {m: s[m] for m in METRICS if m in s} for p, s in record["summaries"].items()
        },
        "evaluated": {p: {m: s[m] for m in METRICS if m in s} for p, s in evaluated.items()},
        "max_abs_difference": worst,
        "tolerance": tolerance,
        "ok": worst <= tolerance,
        "checked": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
        "machine": machine_label(),
    }
    if refitted is not None:
        check["refit"] = refitted
    atomic_write_bytes(check_path, (json.dumps(check, indent=1) + "\n").encode())
    return check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="The study folder.")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument(
        "--refit", action="store_true", help="Train a seed again where its model is not here."
    )
    parser.add_argument("--cells", help="Only these cells, e.g. mf-d16,gmf-d32 (default: all).")
    args = parser.parse_args()
    only = set(args.cells.split(",")) if args.cells else None
    failed, missing = [], []
    for record_path in sorted((args.out / "cells").glob("*/seed[0-9]*.json")):
        if record_path.name.endswith(".check.json"):
            continue
        if only is not None and record_path.parent.name not in only:
            continue
        name = f"{record_path.parent.name}/{record_path.stem}"
        check = check_seed(record_path, args.dataset, args.tolerance, args.refit)
        if check is None:
            has_check = record_path.with_name(f"{record_path.stem}.check.json").is_file()
            if not has_check:
                missing.append(name)
            continue
        verdict = "ok" if check["ok"] else "FAILED"
        print(f"{name}: max |recorded - evaluate| {check['max_abs_difference']:.2e} {verdict}")
        if not check["ok"]:
            failed.append(name)
    if missing:
        print(f"not checkable here (no saved model, no check record): {', '.join(missing)}")
    if failed:
        sys.exit(f"not reproduced to {args.tolerance:g}: {', '.join(failed)}")


if __name__ == "__main__":
    main()

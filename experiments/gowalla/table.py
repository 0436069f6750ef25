"""The record's table of every finished Gowalla study cell: test metrics over seeds, holdout
value, tuning and final-fit hours, read from the cells' JSON (no model is loaded).

    python experiments/gowalla/table.py experiments/study-gowalla-d64 \
        experiments/study-gowalla-ials experiments/study-gowalla-mf256
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def rows(study: Path) -> list[str]:
    """One markdown row per cell of ``study`` with at least one finished seed."""
    out = []

    def order(cell: Path) -> tuple[str, int]:  # by model, then size as a number
        model, _, size = cell.name.rpartition("-d")
        return model, int(size)

    for cell in sorted((study / "cells").iterdir(), key=order):
        seeds = sorted(cell.glob("seed*.json"))
        tuning_file = cell / "tuning.json"
        if not seeds or not tuning_file.exists():
            continue
        tuning = json.loads(tuning_file.read_text())
        runs = [json.loads(p.read_text()) for p in seeds]
        summary = [r["summaries"]["ranking"] for r in runs]
        recall = np.array([s["recall@20"] for s in summary])
        ndcg = np.array([s["ndcg@20"] for s in summary])
        fits = sum(r["fit_seconds"] for r in runs)
        model, size = cell.name.rsplit("-d", 1)
        settings = tuning["settings"]
        sd = recall.std(ddof=1) if len(runs) > 1 else 0.0
        users = settings.get("holdout_users") or "all"
        out.append(
            f"| {model} | {size} | {recall.mean():.4f} ± {sd:.4f} "
            f"| {ndcg.mean():.4f} | {len(runs)} | {tuning['best_value']:.4f} ({users} users) "
            f"| {tuning['complete']} + {tuning['pruned']} pruned "
            f"| {tuning['trial_seconds'] / 3600:.2f} h | {fits / 3600:.2f} h "
            f"| {settings.get('optimizer') or '-'} | {study.name} |"
        )
    return out


def main() -> None:
    print(
        "| model | size | Recall@20 | NDCG@20 | seeds | holdout NDCG@20 (scored users) | trials "
        "| tuning "
        "| final fits | optimizer | study |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        for row in rows(Path(arg)):
            print(row)


if __name__ == "__main__":
    main()

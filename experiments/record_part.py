"""Append the part of a long study that just stopped to OUT/parts.md (and OUT/parts.json).

A study that runs for days in parts (experiments/study_ml1m_queue.sh) must say what each part
did: when it stopped, how many cells and trials were finished by then, and the machine hours it
added. The figures are the study's own accounting (:func:`dotrec.study.status.study_status`:
trial durations from the Optuna storage, fit times from the seed records), so a part's hours
are the growth of that total since the previous record. Work the total no longer holds (final
fits run again, whose new records replaced the old ones) is added to the part with
``--extra-hours`` and a ``--note``; "all parts" is then the machine time spent, the sum of the
parts, while ``total_hours`` in parts.json stays the study's accounting. Called by
experiments/stop_studies.sh after the studies are stopped; run it by hand with the queue's
settings (``--ended`` and ``--ran-on`` record a part whose session stopped without it):

    .venv/bin/python experiments/record_part.py --out experiments/study-ml1m \\
        --models mf,ials,gmf,mlp,neumf --dims 16,32,64,128,192 --trials 20 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import socket
from datetime import datetime, timezone
from pathlib import Path

from dotrec.artifacts import atomic_write_bytes
from dotrec.machine import machine_label
from dotrec.study import StudyConfig
from dotrec.study.status import study_status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", required=True)
    parser.add_argument("--dims", required=True)
    parser.add_argument("--trials", type=int, required=True)
    parser.add_argument("--seeds", type=int, required=True)
    parser.add_argument("--ended", help="When the part ended, e.g. 2026-12-07T04:45Z (now).")
    parser.add_argument("--ran-on", help="Its hardware (default: this machine).")
    parser.add_argument("--extra-hours", type=float, default=0.0)
    parser.add_argument("--note", default="", help="What the part did beyond the counts.")
    args = parser.parse_args()
    config = StudyConfig(
        models=tuple(args.models.split(",")),
        dims=tuple(int(d) for d in args.dims.split(",")),
        n_trials=args.trials,
        n_seeds=args.seeds,
    )
    cells = study_status(config, args.out)
    hours = sum(c.trial_seconds + c.fit_seconds for c in cells) / 3600
    record = args.out / "parts.json"
    parts = json.loads(record.read_text()) if record.exists() else []
    previous = parts[-1]["total_hours"] if parts else 0.0
    if parts and hours - previous + args.extra_hours < 0.005:
        print(f"nothing new since part {len(parts)} ({previous:.2f} machine hours); not recorded")
        return
    parts.append(
        {
            "ended": args.ended or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
            "cells_done": sum(c.state == "done" for c in cells),
            "cells": len(cells),
            "trials_finished": sum(min(c.finished, c.n_trials) for c in cells),
            "trials": config.n_trials * len(cells),
            "total_hours": round(hours, 3),
            "part_hours": round(hours - previous + args.extra_hours, 3),
            "ran_on": args.ran_on or f"{machine_label()} ({socket.gethostname()})",
        }
        | ({"note": args.note} if args.note else {})
    )
    spent = 0.0
    rows = [
        "| part | ended (UTC) | cells done | trials finished | machine hours, this part | "
        "machine hours, all parts | ran on | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, p in enumerate(parts):
        spent += p["part_hours"]
        rows.append(
            f"| {i + 1} | {p['ended']} | {p['cells_done']}/{p['cells']} | "
            f"{p['trials_finished']}/{p['trials']} | {p['part_hours']:.2f} | {spent:.2f} | "
            f"{p['ran_on']} | {p.get('note', '')} |"
        )
    text = (
        "# The parts of this study\n\n"
        "One row per part of the run, written when the part stopped "
        "(`experiments/record_part.py`, called by `experiments/stop_studies.sh`). Machine hours "
        "are the study's own accounting (`dotrec study --status`): trial durations and final "
        "fits, a trial killed at the end of a part counted to its latest epoch; a part's hours "
        'add what the accounting no longer holds (final fits run again), so "all parts" is '
        "the machine time spent.\n\n" + "\n".join(rows) + "\n"
    )
    atomic_write_bytes(record, (json.dumps(parts, indent=1) + "\n").encode())
    atomic_write_bytes(args.out / "parts.md", text.encode())
    print(rows[-1])


if __name__ == "__main__":
    main()

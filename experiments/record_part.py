"""Append the part of a long study that just stopped to OUT/parts.md (and OUT/parts.json).

The records and their accounting are dotrec.study.parts (:func:`~dotrec.study.parts.record_part`):
a part's hours are the growth of the study's own accounting since the previous part, plus
``--extra-hours`` of work that accounting no longer holds (final fits run again), with a
``--note``; "all parts" is the machine time spent, and the study's report shows it. Called by
experiments/stop_studies.sh after the studies are stopped; run it by hand with the queue's
settings (``--ended`` and ``--ran-on`` record a part whose session stopped without it):

    .venv/bin/python experiments/record_part.py --out experiments/study-ml1m \\
        --models mf,ials,gmf,mlp,neumf --dims 16,32,64,128,192 --trials 20 --seeds 3
"""

from __future__ import annotations

import argparse

from dotrec.study import StudyConfig
from dotrec.study.parts import load_parts, parts_markdown, record_part


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
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
    part = record_part(
        config,
        args.out,
        ended=args.ended,
        ran_on=args.ran_on,
        extra_hours=args.extra_hours,
        note=args.note,
    )
    parts = load_parts(args.out)
    if part is None:
        print(f"nothing new since part {len(parts)}; not recorded")
        return
    print(parts_markdown(parts).splitlines()[-1])


if __name__ == "__main__":
    main()

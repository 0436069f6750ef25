"""Reliability report: reader fuzzing, kill-and-resume training, a load test with faults.

Sections (``--sections``, comma-separated; run from the repository root, as it uses the test
suite's fuzz strategies and kill helpers):

fuzz
    The reader fuzz suite (``tests/reliability/test_fuzz_readers.py``) with ``--fuzz-examples``
    cases per reader (10,000 by default; CI runs 1,000). Prints the cases per reader and how
    they ended (loaded with every data line accounted for, or a DataError naming the file);
    any other outcome fails the suite and this script.
resume
    For MF and iALS: one uninterrupted training run, then ``--trials`` runs killed with SIGKILL
    after their 1st, 2nd, 3rd ... checkpoint and resumed with ``--resume``; each resumed model
    is compared with the uninterrupted one bit for bit.
load
    ``benchmarks/loadtest.py``'s load test: ``--requests`` over ``--connections`` connections
    against a fresh ``dotrec serve`` on loopback, with ``--hostile`` hostile requests (each must
    get a 4xx) and ``--reloads`` model reloads during the run. Prints throughput, p50/p99
    latency, statuses and failures.

Example::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/reliability.py --json runs/reliability.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from dotrec.machine import machine_line  # noqa: E402


def log(msg: str) -> None:
    print(msg, flush=True)


def run_fuzz(examples: int) -> dict[str, Any]:
    """The fuzz suite in a subprocess; its per-reader counts parsed from the summary."""
    start = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/reliability/test_fuzz_readers.py",
        ],
        cwd=ROOT,
        text=True,
        capture_output=True,
        env={**os.environ, "DOTREC_FUZZ_EXAMPLES": str(examples)},
    )
    readers: dict[str, dict[str, int]] = {}
    for line in r.stdout.splitlines():
        m = re.match(r"(\S+)\s+(\d+) cases: ([^(]*)", line)
        if m:
            outcomes = dict(part.rsplit(" ", 1) for part in m.group(3).strip().split(", "))
            readers[m.group(1)] = {
                "cases": int(m.group(2)),
                **{k: int(v) for k, v in outcomes.items()},
            }
    tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-500:]
    seconds = time.perf_counter() - start
    log(
        f"\nreader fuzzing, {examples} examples per reader test ({seconds:.0f} s): "
        f"pytest says '{tail}'"
    )
    for name, c in sorted(readers.items()):
        rest = ", ".join(f"{k} {v}" for k, v in c.items() if k != "cases")
        log(f"  {name:20s} {c['cases']:6d} cases: {rest}")
    if r.returncode != 0:
        log(r.stdout[-3000:])
    return {
        "examples_per_reader": examples,
        "readers": readers,
        "passed": r.returncode == 0,
        "pytest": tail,
    }


def run_resume(trials: int) -> dict[str, Any]:
    """Kill-and-resume trials per trainer, each compared bit for bit."""
    from tests.reliability import test_kill_resume as kr

    out: dict[str, Any] = {}
    log(f"\nkill-and-resume ({trials} trials per trainer, SIGKILL after checkpoint 1..{trials})")
    for model in sorted(kr.TRAINERS):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            expected = kr.reference_run(model, Path(tmp))
            results = []
            for trial in range(trials):
                try:
                    same = kr.identical(kr.kill_and_resume(model, Path(tmp), trial), expected)
                    results.append("bit-identical" if same else "DIFFERENT")
                except AssertionError as exc:
                    results.append(f"FAILED: {exc}")
        out[model] = results
        log(f"  {model:5s}: {', '.join(results)} ({time.perf_counter() - start:.0f} s)")
    return out


def run_load(args: argparse.Namespace) -> dict[str, Any]:
    import loadtest

    log(
        f"\nload test: {args.requests} requests over {args.connections} connections, "
        f"{args.hostile:.0%} hostile, {args.reloads} reloads during the run"
    )
    report = loadtest.load_test(
        requests=args.requests,
        connections=args.connections,
        hostile=args.hostile,
        reloads=args.reloads,
    )
    loadtest.print_report(report)
    return report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sections", default="fuzz,resume,load")
    p.add_argument("--fuzz-examples", type=int, default=10_000)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--hostile", type=float, default=0.02)
    p.add_argument("--reloads", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    log(machine_line())
    results: dict[str, Any] = {}
    if "fuzz" in sections:
        results["fuzz"] = run_fuzz(args.fuzz_examples)
    if "resume" in sections:
        results["resume"] = run_resume(args.trials)
    if "load" in sections:
        results["load"] = run_load(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    ok = (
        results.get("fuzz", {}).get("passed", True)
        and all(r == "bit-identical" for rs in results.get("resume", {}).values() for r in rs)
        and not results.get("load", {}).get("failures", 0)
        and all(s == 200 for s in results.get("load", {}).get("reloads", []))
    )
    log("\nall checks passed" if ok else "\nSOME CHECKS FAILED")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

"""Tables, trend analysis, markdown summary and heatmaps of an approx-dot grid.

A *cell* is ``(first_layer_mult, d, n_users)``; its numbers are the mean and the standard deviation
(``ddof=1``; NaN with one repeat) over the repeats. The *excess* of a run is
``RMSE(MLP) - RMSE(dot product)`` on the same pairs, the quantity of the paper's Figure 3.

Every statement of the summary is computed from the cells; nothing in it is fixed text about the
outcome.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dotrec.approx.data import LABEL_STD, TARGET_STD
from dotrec.approx.grid import MODELS, PARTS, PROTOCOL_VERSION, GridSpec
from dotrec.artifacts import atomic_write_bytes

#: Tolerance of the acceptance check on the dot product's and the zero predictor's test RMSE.
BASELINE_TOLERANCE = 0.01

Cell = dict[str, Any]


def _metric_names() -> list[str]:
    names = [f"{model}_{part}" for model in MODELS for part in PARTS]
    return names + [f"excess_{part}" for part in PARTS] + ["seconds", "cpu_seconds"]


def aggregate(records: Sequence[dict[str, Any]]) -> list[Cell]:
    """One row per cell: ``{metric}_mean`` and ``{metric}_std`` over the repeats, sorted."""
    groups: dict[tuple[int, int, int], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["first_layer_mult"], r["d"], r["n_users"]), []).append(r)
    cells: list[Cell] = []
    for (m, d, n), rs in sorted(groups.items()):
        cell: Cell = {"first_layer_mult": m, "d": d, "n_users": n, "repeats": len(rs)}
        for name in _metric_names():
            if name.startswith("excess_"):
                part = name.removeprefix("excess_")
                vals = np.array([r[f"mlp_{part}"] - r[f"dot_{part}"] for r in rs])
            else:
                vals = np.array([r[name] for r in rs], dtype=np.float64)
            cell[f"{name}_mean"] = float(vals.mean())
            cell[f"{name}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
        cells.append(cell)
    return cells


def cells_csv(cells: Sequence[Cell]) -> str:
    """The cells as CSV text (NaN written as an empty field)."""
    buf = io.StringIO()
    if cells:
        writer = csv.DictWriter(buf, fieldnames=list(cells[0]), lineterminator="\n")
        writer.writeheader()
        for c in cells:
            writer.writerow(
                {k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in c.items()}
            )
    return buf.getvalue()


def cells_json(cells: Sequence[Cell], meta: dict[str, Any]) -> str:
    """The cells and ``meta`` as JSON text (NaN written as null)."""
    clean = [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in c.items()}
        for c in cells
    ]
    return json.dumps({**meta, "cells": clean}, indent=1) + "\n"


@dataclass(frozen=True)
class Change:
    """The excess at the two ends of one row or column of a heatmap."""

    fixed: int  # the n_users (for a change along d) or the d (for a change along n_users)
    start: int  # smallest d / n_users
    end: int  # largest d / n_users
    start_excess: float
    end_excess: float

    @property
    def delta(self) -> float:
        return self.end_excess - self.start_excess


@dataclass(frozen=True)
class Trends:
    """How the test excess of one ``first_layer_mult`` changes along d and along n_users."""

    first_layer_mult: int
    along_d: list[Change]  # one per n_users; empty if the grid has a single d
    along_users: list[Change]  # one per d; empty if the grid has a single n_users
    reference: float  # the excess of the smallest d at the smallest n_users
    users_needed: dict[int, int | None]  # per d: smallest n_users with excess <= reference

    @property
    def grows_with_d(self) -> int:
        return sum(c.delta > 0 for c in self.along_d)

    @property
    def shrinks_with_users(self) -> int:
        return sum(c.delta < 0 for c in self.along_users)


def _excess_table(cells: Sequence[Cell], m: int) -> tuple[list[int], list[int], np.ndarray]:
    sub = [c for c in cells if c["first_layer_mult"] == m]
    dims = sorted({c["d"] for c in sub})
    users = sorted({c["n_users"] for c in sub})
    table = np.full((len(dims), len(users)), np.nan)
    for c in sub:
        table[dims.index(c["d"]), users.index(c["n_users"])] = c["excess_test_mean"]
    return dims, users, table


def trends(cells: Sequence[Cell]) -> list[Trends]:
    """The trends of the test excess for every ``first_layer_mult`` in ``cells``."""
    out = []
    for m in sorted({c["first_layer_mult"] for c in cells}):
        dims, users, t = _excess_table(cells, m)
        along_d = [
            Change(n, dims[0], dims[-1], t[0, j], t[-1, j])
            for j, n in enumerate(users)
            if len(dims) > 1
        ]
        along_users = [
            Change(d, users[0], users[-1], t[k, 0], t[k, -1])
            for k, d in enumerate(dims)
            if len(users) > 1
        ]
        reference = float(t[0, 0])
        needed: dict[int, int | None] = {}
        for k, d in enumerate(dims):
            reached = [n for j, n in enumerate(users) if t[k, j] <= reference]
            needed[d] = reached[0] if reached else None
        out.append(Trends(m, along_d, along_users, reference, needed))
    return out


def verdict(tr: Sequence[Trends]) -> str:
    """Whether the grid matches the paper: the excess grows with d and shrinks with n_users."""
    along_d = [c for t in tr for c in t.along_d]
    along_users = [c for t in tr for c in t.along_users]
    if not along_d or not along_users:
        return (
            "not judged: the grid needs at least two values of d and two of n_users to "
            "compare trends"
        )
    grows = sum(c.delta > 0 for c in along_d)
    shrinks = sum(c.delta < 0 for c in along_users)
    detail = (
        f"the excess grows from the smallest to the largest d in {grows} of "
        f"{len(along_d)} comparisons and shrinks from the fewest to the most users in "
        f"{shrinks} of {len(along_users)}"
    )
    if grows == len(along_d) and shrinks == len(along_users):
        return f"matches the paper's finding (an MLP needs far more data as d grows): {detail}"
    if grows == 0 and shrinks == 0:
        return f"does not match the paper's finding: {detail}"
    return f"matches the paper's finding only in part: {detail}"


def _pm(mean: float, std: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _within(cells: Sequence[Cell], key: str, target: float) -> str:
    vals = [c[key] for c in cells]
    outside = sum(abs(v - target) > BASELINE_TOLERANCE for v in vals)
    status = (
        f"all {len(vals)} cells within {target} ± {BASELINE_TOLERANCE}"
        if not outside
        else f"{outside} of {len(vals)} cells outside {target} ± {BASELINE_TOLERANCE}"
    )
    return f"{min(vals):.4f} to {max(vals):.4f} ({status})"


def run_meta(spec: GridSpec, device: str) -> dict[str, Any]:
    """JSON-safe description of a grid run: its spec, the device and the protocol version."""
    return {**asdict(spec), "device": device, "protocol_version": PROTOCOL_VERSION}


def summary_markdown(cells: Sequence[Cell], meta: dict[str, Any]) -> str:
    """The markdown summary: settings, baseline checks, the results table, trends and verdict."""
    tr = trends(cells)
    lines = [
        "# approx-dot: can an MLP learn a dot product?",
        "",
        f"Grid: d = {meta['dims']}, n_users = n_items = {meta['users']}, first_layer_mult = "
        f"{meta['first_layer_mults']}, {meta['repeats']} repeat(s); {meta['epochs']} epochs, "
        f"batch {meta['batch_size']}, Adam lr {meta['learning_rate']}, seed {meta['seed']}, "
        f"device {meta['device']}. Excess = RMSE(MLP) - RMSE(dot product) on the test pairs; "
        "values are means over repeats, ± one standard deviation.",
        "",
        "## Baselines",
        "",
        f"- True dot product, test RMSE: {_within(cells, 'dot_test_mean', LABEL_STD)}.",
        f"- Zero predictor, test RMSE: {_within(cells, 'zero_test_mean', TARGET_STD)}.",
        "",
        "## Results",
        "",
        "| m | d | n_users | MLP train | MLP test | MLP fresh | dot test | zero test "
        "| excess test | excess fresh |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        row = [str(c["first_layer_mult"]), str(c["d"]), str(c["n_users"])]
        row += [_pm(c[f"mlp_{p}_mean"], c[f"mlp_{p}_std"]) for p in PARTS]
        row += [f"{c['dot_test_mean']:.4f}", f"{c['zero_test_mean']:.4f}"]
        row += [_pm(c[f"excess_{p}_mean"], c[f"excess_{p}_std"]) for p in ("test", "fresh")]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## How the excess changes", ""]
    for t in tr:
        lines.append(f"first_layer_mult = {t.first_layer_mult}:")
        lines.append("")
        if t.along_d:
            parts = ", ".join(
                f"{c.fixed} users {c.start_excess:.4f} → {c.end_excess:.4f} ({c.delta:+.4f})"
                for c in t.along_d
            )
            lines.append(
                f"- With d (d = {t.along_d[0].start} → {t.along_d[0].end}): grows in "
                f"{t.grows_with_d} of {len(t.along_d)} user counts; {parts}."
            )
        if t.along_users:
            parts = ", ".join(
                f"d = {c.fixed} {c.start_excess:.4f} → {c.end_excess:.4f} ({c.delta:+.4f})"
                for c in t.along_users
            )
            lines.append(
                f"- With n_users ({t.along_users[0].start} → {t.along_users[0].end}): "
                f"shrinks in {t.shrinks_with_users} of {len(t.along_users)} "
                f"dimensions; {parts}."
            )
        largest_users = max(c["n_users"] for c in cells)
        d0 = min(t.users_needed)
        n0 = min(c["n_users"] for c in cells if c["first_layer_mult"] == t.first_layer_mult)
        needed = "; ".join(
            f"d = {d}: {n} users"
            if n is not None
            else f"d = {d}: more than {largest_users} users (not reached)"
            for d, n in t.users_needed.items()
        )
        lines.append(
            f"- Data needed to bring the excess down to {t.reference:.4f} (d = {d0} at "
            f"{n0} users): {needed}."
        )
        lines.append("")
    lines += ["## Verdict", "", f"This grid {verdict(tr)}.", ""]
    return "\n".join(lines)


def plot_heatmaps(cells: Sequence[Cell], out_dir: str | Path) -> list[Path]:
    """Write ``excess_m{m}.png`` per ``first_layer_mult``: test excess over d x n_users."""
    # An explicit Agg canvas, not pyplot: no global backend switch, no GUI, thread-safe.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_dir)
    mults = sorted({c["first_layer_mult"] for c in cells})
    tables = {m: _excess_table(cells, m) for m in mults}
    vmax = max(float(np.nanmax(t)) for _, _, t in tables.values())
    vmin = min(0.0, min(float(np.nanmin(t)) for _, _, t in tables.values()))
    paths = []
    for m, (dims, users, t) in tables.items():
        fig = Figure(figsize=(1.2 + 1.1 * len(users), 1.0 + 0.7 * len(dims)))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        im = ax.imshow(t, cmap="viridis", vmin=vmin, vmax=vmax, origin="lower", aspect="auto")
        for k in range(len(dims)):
            for j in range(len(users)):
                v = t[k, j]
                color = "white" if v < vmin + 0.6 * (vmax - vmin) else "black"
                ax.text(j, k, f"{v:.3f}", ha="center", va="center", color=color, fontsize=9)
        ax.set_xticks(range(len(users)), [str(n) for n in users])
        ax.set_yticks(range(len(dims)), [str(d) for d in dims])
        ax.set_xlabel("n_users (= n_items)")
        ax.set_ylabel("embedding dimension d")
        ax.set_title(f"RMSE(MLP) - RMSE(dot), test, m = {m}", fontsize=10)
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        path = out / f"excess_m{m}.png"
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths


def write_outputs(
    records: Sequence[dict[str, Any]], out_dir: str | Path, spec: GridSpec, device: str
) -> dict[str, Path]:
    """Write ``cells.csv``, ``cells.json``, ``summary.md`` and the heatmaps; return their paths."""
    out = Path(out_dir)
    cells = aggregate(records)
    meta = run_meta(spec, device)
    paths = {"csv": out / "cells.csv", "json": out / "cells.json", "summary": out / "summary.md"}
    atomic_write_bytes(paths["csv"], cells_csv(cells).encode("utf-8"))
    atomic_write_bytes(paths["json"], cells_json(cells, meta).encode("utf-8"))
    atomic_write_bytes(paths["summary"], summary_markdown(cells, meta).encode("utf-8"))
    for p in plot_heatmaps(cells, out):
        paths[p.stem] = p
    return paths

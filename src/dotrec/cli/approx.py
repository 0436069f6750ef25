"""``dotrec approx-dot``: can an MLP learn a dot product? (Rendle et al. 2020, Figure 3).

Runs the grid ``--dims x --users x --first-layer-mult`` with ``--repeats`` repeats, records every
finished run in ``OUT/results.json`` (a rerun skips them), and writes ``cells.csv``,
``cells.json``, ``excess_m{m}.png`` and ``summary.md`` into ``OUT``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from dotrec._torch import check_device
from dotrec.approx.data import N_FRESH
from dotrec.approx.grid import (
    DEFAULT_DIMS,
    DEFAULT_EPOCHS,
    DEFAULT_MULTS,
    DEFAULT_REPEATS,
    DEFAULT_USERS,
    RESULTS_FILE,
    GridSpec,
    RunKey,
    run_grid,
)
from dotrec.approx.report import aggregate, trends, verdict, write_outputs
from dotrec.cli._common import epoch_progress, print_table
from dotrec.cli.app import app, console, device_option
from dotrec.cli.train import parse_int_list


def _csv(values: tuple[int, ...]) -> str:
    return ",".join(map(str, values))


@app.command("approx-dot")
def approx_dot_cmd(
    dims: str = typer.Option(_csv(DEFAULT_DIMS), "--dims", help="Embedding dimensions d."),
    users: str = typer.Option(
        _csv(DEFAULT_USERS), "--users", help="Numbers of users (n_items = n_users), each >= 100."
    ),
    first_layer_mult: str = typer.Option(
        _csv(DEFAULT_MULTS),
        "--first-layer-mult",
        help="MLP sizes m: hidden layers [2md, md, md/2].",
    ),
    repeats: int = typer.Option(
        DEFAULT_REPEATS, "--repeats", help="Repeats per cell (new data and initialisation each)."
    ),
    epochs: int = typer.Option(DEFAULT_EPOCHS, "--epochs", help="Training epochs of the MLP."),
    seed: int = typer.Option(0, "--seed", help="Random seed of data, initialisation and order."),
    fresh_pairs: int = typer.Option(
        N_FRESH, "--fresh-pairs", help="Pairs with newly drawn embeddings in the fresh set."
    ),
    out: Path = typer.Option(
        Path("runs/approx-dot"),
        "--out",
        "-o",
        help="Output directory; results.json there is resumed.",
    ),
    device: str = device_option("cpu"),
    threads: int = typer.Option(
        1, "--threads", help="torch CPU threads (1 is fastest for these small MLPs)."
    ),
) -> None:
    """Train an MLP to learn a dot product over a grid of d x n_users; resumable."""
    spec = GridSpec(
        dims=tuple(parse_int_list(dims, "--dims")),
        users=tuple(parse_int_list(users, "--users")),
        first_layer_mults=tuple(parse_int_list(first_layer_mult, "--first-layer-mult")),
        repeats=repeats,
        epochs=epochs,
        seed=seed,
        n_fresh=fresh_pairs,
    )
    check_device(device)
    n_runs = len(spec.runs())
    cached = 0
    with epoch_progress() as progress:
        task = progress.add_task("approx-dot runs", total=n_runs, info="")

        def on_epoch(key: RunKey, epoch: int) -> None:
            progress.update(
                task,
                info=f"d={key.d} users={key.n_users} m={key.first_layer_mult} "
                f"repeat={key.repeat} epoch {epoch}/{epochs}",
            )

        def on_run(key: RunKey, record: dict[str, Any], was_cached: bool) -> None:
            nonlocal cached
            cached += was_cached
            progress.advance(task)

        records = run_grid(
            spec, out, device=device, threads=threads, on_epoch=on_epoch, on_run=on_run
        )
    paths = write_outputs(records, out, spec, device)
    cells = aggregate(records)

    table = Table(title=f"approx-dot ({n_runs - cached} runs computed, {cached} resumed)")
    for col in ("m", "d", "n_users", "MLP test", "dot test", "zero test", "excess test"):
        table.add_column(col, justify="right")
    for c in cells:
        spread = "" if c["repeats"] < 2 else f" ± {c['excess_test_std']:.4f}"
        table.add_row(
            str(c["first_layer_mult"]),
            str(c["d"]),
            str(c["n_users"]),
            f"{c['mlp_test_mean']:.4f}",
            f"{c['dot_test_mean']:.4f}",
            f"{c['zero_test_mean']:.4f}",
            f"{c['excess_test_mean']:.4f}{spread}",
        )
    print_table(table)
    console.print(f"This grid {verdict(trends(cells))}.", highlight=False)
    written = [out / RESULTS_FILE, *paths.values()]
    console.print("wrote " + ", ".join(str(p) for p in written), highlight=False)

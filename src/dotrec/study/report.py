"""The study report: ``report.md`` and a self-contained ``report.html``, with PNG figures.

Both files render the same blocks: the settings, the results table (mean and standard
deviation over seeds, every protocol, fit time; published numbers in their own labelled rows),
the paired comparison of dot product against learned similarity in numbers and in words, the
figures (the metrics against embedding size, the paper's Figure 2; fit time against quality),
the best hyperparameters of every cell, the hardware each cell's trials and fits ran on and,
for a study run in parts (:mod:`dotrec.study.parts`), each part with the machine time spent.
The HTML embeds the PNGs, so it is one file.

Protocols and metrics follow the split's kind: sampled and full-catalog HR@k and NDCG@k for
leave-one-out; Recall@k, NDCG@k and Precision@k under full ranking for a split given by files.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dotrec._version import __version__
from dotrec.artifacts import atomic_write_bytes
from dotrec.data.splits import DEFAULT_HOLDOUT_FRACTION
from dotrec.machine import machine_line
from dotrec.study.driver import FILES, LEAVE_ONE_OUT, PROTOCOL_METRICS, Cell, StudyResult
from dotrec.study.parts import PART_COLUMNS, Part, hours_spent, part_rows
from dotrec.study.published import Published, published_for
from dotrec.study.stats import TESTS, Comparison, Paired, comparisons

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MD_FILE = "report.md"
HTML_FILE = "report.html"
QUALITY_PNG = "quality_vs_size.png"
TIME_PNG = "time_vs_quality.png"

SIZE_ACCOUNTING = (
    "Embedding size follows the accounting of Rendle et al. (2020, Figure 2) after He et al. "
    "(2017): MF and iALS have embedding_dim = size; an NCF model with predictive factor k "
    "counts as k (GMF), 2k (MLP) and 3k (NeuMF: a GMF branch of k plus an MLP branch of 2k). "
    "A size that is not a multiple is rounded to the nearest k; the size column shows the "
    "counted size and the width column the model's own parameter. dotrec's MLP has the "
    "paper's configuration, [4k, 2k, k] hidden units over user and item embeddings of 2k "
    "each, so the counted size is the embedding width of each side."
)


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    file: str
    alt: str


Block = Heading | Para | Bullets | Table | Image

_METRIC_NAMES = {
    "ndcg": "NDCG",
    "hr": "HR",
    "rr": "MRR",
    "recall": "Recall",
    "precision": "Precision",
}
_PROTOCOL_WORDS = {"sampled": "sampled", "full": "full-catalog", "ranking": "full-ranking"}
#: The comparisons stated in words, per kind of split.
_SENTENCES: dict[str, tuple[tuple[str, str], ...]] = {
    LEAVE_ONE_OUT: (("sampled", "ndcg"), ("sampled", "hr"), ("full", "ndcg")),
    FILES: TESTS[FILES],
}


def metric_label(kind: str, protocol: str, metric: str, k: int) -> str:
    """A column or axis name: ``"sampled HR@10"`` (leave-one-out, two protocols) or
    ``"Recall@20"`` (a split given by files: one protocol, so it is not named)."""
    name = f"{_METRIC_NAMES[metric]}@{k}"
    return name if kind == FILES else f"{protocol} {name}"


def _objective(result: StudyResult) -> str:
    """The tuning objective's name (on a split given by files ``hr`` is read as recall)."""
    metric = result.config.metric
    if result.kind == FILES and metric == "hr":
        metric = "recall"
    return f"{_METRIC_NAMES[metric]}@{result.config.k}"


def _table_metrics(result: StudyResult, compact: bool) -> list[tuple[str, str]]:
    """The (protocol, metric) columns of the results table (no Precision in a terminal)."""
    return [
        (p, m)
        for p in result.protocols
        for m in PROTOCOL_METRICS[p]
        if not (compact and m == "precision")
    ]


def _published(result: StudyResult) -> list[Published]:
    """Published rows comparable with ``result`` (dataset, cut-off and protocol)."""
    return published_for(result.dataset, result.config.models, result.config.k, result.protocols)


def plural(n: int, word: str) -> str:
    """``n`` and ``word``, with an s unless ``n`` is 1 ("1 trial", "3 seeds")."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _mean_std(values: np.ndarray) -> str:
    if len(values) < 2:
        return f"{values.mean():.4f}"
    return f"{values.mean():.4f} ± {values.std(ddof=1):.4f}"


def _width(cell: Cell) -> str:
    return f"d={cell.width}" if cell.model in ("mf", "ials") else f"k={cell.width}"


def results_table(result: StudyResult, compact: bool = False) -> Table:
    """Our cells and the published rows, grouped by model.

    The full table (for the report) has mean ± standard deviation over seeds, the model's width
    and the tuned holdout value; the ``compact`` one (for a terminal) has the means only.
    """
    k = result.config.k
    objective = f"holdout {_objective(result)}"
    metrics = _table_metrics(result, compact)
    headers = (
        "model",
        "size",
        *(() if compact else ("width",)),
        *(metric_label(result.kind, p, m, k) for p, m in metrics),
        "fit s",
        *(() if compact else (objective,)),
        "source",
    )
    published = _published(result)
    refs = _references(published)
    rows: list[tuple[str, ...]] = []
    for model in result.config.models:
        for cell in sorted((c for c in result.cells if c.model == model), key=lambda c: c.size):
            values = [cell.metric(p, f"{m}@{k}") for p, m in metrics]
            rows.append(
                (
                    model,
                    str(cell.counted_size),
                    *(() if compact else (_width(cell),)),
                    *(f"{v.mean():.4f}" if compact else _mean_std(v) for v in values),
                    f"{cell.fit_seconds.mean():.1f}",
                    *(() if compact else (f"{cell.tuning.best_value:.4f}",)),
                    "ours" if compact else f"ours, {plural(len(cell.runs), 'seed')}",
                )
            )
        rows += [
            _published_row(p, metrics, refs, k, compact) for p in published if p.model == model
        ]
    # reference rows of models the study does not have (LightGCN, ...) come last
    rows += [
        _published_row(p, metrics, refs, k, compact)
        for p in published
        if p.model not in result.config.models
    ]
    return Table(headers, tuple(rows))


def _published_row(
    p: Published, metrics: list[tuple[str, str]], refs: list[str], k: int, compact: bool
) -> tuple[str, ...]:
    """A published result in the results table: its values where it has them, else "-"."""
    values = (
        f"{p.metrics[f'{m}@{k}']:.4f}" if proto == p.protocol and f"{m}@{k}" in p.metrics else "-"
        for proto, m in metrics
    )
    source = f"published [{refs.index(p.source) + 1}]"
    return (
        p.model,
        "-" if p.size is None else str(p.size),
        *(() if compact else ("-",)),
        *values,
        "-",
        *(() if compact else ("-",)),
        source + (", selected on the test set" if p.test_selected else ""),
    )


def _references(published: list[Published]) -> list[str]:
    refs: list[str] = []
    for p in published:
        if p.source not in refs:
            refs.append(p.source)
    return refs


def _label(cell: Cell) -> str:
    return f"{cell.model} at size {cell.counted_size}"


def _sentence(c: Comparison, p: Paired, k: int) -> str:
    where = f"At size {c.size}" if c.size is not None else "Over all sizes"
    name = f"{_PROTOCOL_WORDS[p.protocol]} {_METRIC_NAMES[p.metric]}@{k}"
    if p.diff == 0:
        verdict = f"{_label(c.dot)} and {_label(c.learned)} tie on {name}"
    else:
        winner, loser = (c.dot, c.learned) if p.diff > 0 else (c.learned, c.dot)
        kind = "dot product" if winner is c.dot else "learned similarity"
        verdict = (
            f"{_label(winner)} ({kind}) is ahead of {_label(loser)} by {abs(p.diff):.4f} {name}"
        )
    sig = "significant at the 5% level" if p.significant else "not significant at the 5% level"
    return (
        f"{where}, {verdict} ({p.mean_a:.4f} vs {p.mean_b:.4f}; difference dot - learned "
        f"{p.diff:+.4f}, 95% CI [{p.ci_low:+.4f}, {p.ci_high:+.4f}], paired t-test over "
        f"{p.n} users, t = {p.t:.2f}, p = {p.p:.2g}): {sig}."
    )


def comparison_blocks(result: StudyResult) -> list[Block]:
    """The paired comparison section: a table, one sentence per test, and a verdict."""
    k = result.config.k
    comps = comparisons(result.cells, k)
    blocks: list[Block] = [Heading(2, "Dot product vs learned similarity")]
    if not comps:
        blocks.append(
            Para(
                "This study has no pair of a dot-product model (mf, ials) and a "
                "learned-similarity model (gmf, mlp, neumf) at one size, so there is "
                "nothing to compare."
            )
        )
        return blocks
    blocks.append(
        Para(
            "At each size (and over all sizes) the dot-product model and the learned-similarity "
            "model with the best tuning-holdout value are compared on the test users. Each user's "
            "metric is averaged over the seeds; the difference dot - learned is tested with a "
            "paired t-test over users, with a 95% confidence interval. Positive means the dot "
            "product is ahead."
        )
    )
    rows = []
    for c in comps:
        for p in c.tests:
            rows.append(
                (
                    "all" if c.size is None else str(c.size),
                    _label(c.dot),
                    _label(c.learned),
                    p.protocol,
                    f"{_METRIC_NAMES[p.metric]}@{k}",
                    f"{p.mean_a:.4f}",
                    f"{p.mean_b:.4f}",
                    f"{p.diff:+.4f}",
                    f"[{p.ci_low:+.4f}, {p.ci_high:+.4f}]",
                    f"{p.p:.2g}",
                )
            )
    blocks.append(
        Table(
            (
                "size",
                "best dot product",
                "best learned similarity",
                "protocol",
                "metric",
                "dot",
                "learned",
                "difference",
                "95% CI",
                "p",
            ),
            tuple(rows),
        )
    )
    blocks.append(
        Bullets(
            tuple(
                _sentence(c, c.test(proto, m), k)
                for c in comps
                for proto, m in _SENTENCES[result.kind]
            )
        )
    )
    learned_wins = sorted(
        {
            ("all sizes" if c.size is None else f"size {c.size}")
            for c in comps
            for p in c.tests
            if p.diff < 0 and p.significant
        }
    )
    if learned_wins:
        blocks.append(
            Para(
                "A learned similarity is significantly ahead in at least one "
                f"metric at: {', '.join(learned_wins)}."
            )
        )
    else:
        blocks.append(
            Para(
                "In no comparison is a learned-similarity model significantly "
                "ahead of the best dot-product model."
            )
        )
    return blocks


def _fmt_param(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def hyperparameter_table(result: StudyResult) -> Table:
    """The best configuration of every cell and the trials it was chosen from."""
    rows = []
    for cell in sorted(result.cells, key=lambda c: (result.config.models.index(c.model), c.size)):
        t = cell.tuning
        params = "; ".join(f"{k}={_fmt_param(v)}" for k, v in sorted(t.best_params.items()))
        rows.append(
            (
                cell.model,
                str(cell.counted_size),
                _width(cell),
                f"{t.best_value:.4f}",
                f"#{t.best_trial}",
                f"{t.complete}/{t.pruned}/{t.failed}",
                f"{t.trial_seconds:.0f}",
                params,
            )
        )
    return Table(
        (
            "model",
            "size",
            "width",
            "holdout value",
            "best trial",
            "complete/pruned/failed",
            "tuning s",
            "best configuration",
        ),
        tuple(rows),
    )


#: Marker shapes of published results in :func:`plot_quality`, one per source.
_SOURCE_MARKERS = ("*", "D", "P", "X", "^")


def published_points(published: list[Published]) -> list[tuple[Published, float, str]]:
    """Where and how :func:`plot_quality` draws each published result that has a size.

    Returns (result, x, marker): one marker shape per source (``by``, else the full
    citation), so that Rendle et al.'s and He et al.'s numbers stay apart; the results of one
    size side by side around it on the log-2 axis, so that equal values stay visible.
    """
    sized = [p for p in published if p.size is not None]
    sources = list(dict.fromkeys(p.by or p.source for p in sized))
    points = []
    for p in sized:
        at = [q for q in sized if q.size == p.size]
        offset = 0.05 * (at.index(p) - (len(at) - 1) / 2)
        marker = _SOURCE_MARKERS[sources.index(p.by or p.source) % len(_SOURCE_MARKERS)]
        points.append((p, float(p.size or 0) * 2**offset, marker))
    return points


def plot_quality(result: StudyResult) -> bytes:
    """PNG of :func:`quality_figure`."""
    buf = io.BytesIO()
    quality_figure(result).savefig(buf, format="png")
    return buf.getvalue()


def quality_figure(result: StudyResult) -> Figure:
    """Every protocol's metrics against embedding size, per model (one row per protocol).

    Published results with a size are large markers in the model's colour, one marker shape
    per source (a star for the first, then a diamond, ...); the range of those without
    (reference models on a split given by files) is a grey band, their values are in the
    results table.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = result.config.k
    protocols = result.protocols
    n_metrics = max(len(PROTOCOL_METRICS[p]) for p in protocols)
    fig = Figure(
        figsize=(5 * n_metrics, 3.75 * len(protocols) + 0.9 + 0.5 * (result.kind == FILES)),
        dpi=110,
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(protocols), n_metrics, squeeze=False)
    published = _published(result)
    colors = {m: f"C{i}" for i, m in enumerate(result.config.models)}
    # Ticks at the study's sizes: a counted size off the axis (NeuMF's 15 and 33, k = 5, 11)
    # sits beside its tick rather than printing a label over the next one.
    sizes = sorted(set(result.config.dims) | {p.size for p in published if p.size is not None})
    for row, protocol in enumerate(protocols):
        for col, metric in enumerate(PROTOCOL_METRICS[protocol]):
            ax = axes[row][col]
            key = f"{metric}@{k}"
            for model in result.config.models:
                cells = sorted(
                    (c for c in result.cells if c.model == model), key=lambda c: c.counted_size
                )
                if not cells:
                    continue
                ys = [c.metric(protocol, key) for c in cells]
                ax.errorbar(
                    [c.counted_size for c in cells],
                    [y.mean() for y in ys],
                    yerr=[y.std(ddof=1) if len(y) > 1 else 0.0 for y in ys],
                    marker="o",
                    capsize=3,
                    color=colors[model],
                    label=model,
                )
            comparable = [p for p in published if p.protocol == protocol and key in p.metrics]
            unsized = [p.metrics[key] for p in comparable if p.size is None]
            if unsized:
                ax.axhspan(
                    min(unsized),
                    max(unsized),
                    color="0.6",
                    alpha=0.3,
                    label=f"published range ({plural(len(unsized), 'model')}, see the table)",
                )
            for p, x, marker in published_points(comparable):
                ax.plot(
                    [x],
                    [p.metrics[key]],
                    marker=marker,
                    markersize=12 if marker == "*" else 8,
                    linestyle="none",
                    color=colors[p.model],
                    markeredgecolor="black",
                    label=f"{p.model}, published" + (f" ({p.by})" if p.by else ""),
                )
            ax.set_xscale("log", base=2)
            ax.set_xticks(sizes)
            ax.set_xticklabels([str(s) for s in sizes])
            ax.minorticks_off()
            ax.set_xlabel("embedding size (paper accounting)")
            ax.set_ylabel(f"{_METRIC_NAMES[metric]}@{k}")
            ax.set_title(
                "full ranking, training items excluded"
                if protocol == "ranking"
                else f"{protocol} protocol"
            )
            ax.grid(True, alpha=0.3)
    # One legend for all panels, below them, where it hides no point: a row of the models,
    # then the published results (collected over the panels: a protocol may have none).
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    entries = sorted(handles.items(), key=lambda e: e[0] not in result.config.models)
    ncol = min(len(entries), max(len(result.config.models), 3))
    # matplotlib fills a legend column by column: this order reads row by row.
    rows = -(-len(entries) // ncol)
    order = [r * ncol + c for c in range(ncol) for r in range(rows) if r * ncol + c < len(entries)]
    fig.legend(
        [entries[i][1] for i in order],
        [entries[i][0] for i in order],
        loc="outside lower center",
        ncol=ncol,
        fontsize=8,
    )
    fig.suptitle(f"{result.dataset}: quality against embedding size (mean ± sd over seeds)")
    return fig


def plot_time(result: StudyResult) -> bytes:
    """PNG: mean fit time against NDCG@k of the first protocol (sampled for leave-one-out),
    one point per cell, labelled by size."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = result.config.k
    protocol = result.protocols[0]
    fig = Figure(figsize=(7, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, model in enumerate(result.config.models):
        cells = sorted((c for c in result.cells if c.model == model), key=lambda c: c.counted_size)
        if not cells:
            continue
        xs = [c.fit_seconds.mean() for c in cells]
        ys = [c.metric(protocol, f"ndcg@{k}").mean() for c in cells]
        ax.plot(xs, ys, marker="o", color=f"C{i}", label=model)
        for c, x, y in zip(cells, xs, ys, strict=True):
            ax.annotate(
                str(c.counted_size), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7
            )
    ax.set_xscale("log")
    ax.set_xlabel("fit seconds on the full training data (mean over seeds)")
    ax.set_ylabel(metric_label(result.kind, protocol, "ndcg", k))
    ax.set_title(f"{result.dataset}: fit time against quality (labels: embedding size)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


#: The label of work whose hardware was not recorded (seed records of older dotrec versions).
NOT_RECORDED = "not recorded"


def _fit_machines(cell: Cell) -> dict[str, float]:
    """Final-fit seconds of ``cell`` per hardware label."""
    split: dict[str, float] = {}
    for run in cell.runs:
        label = run.machine or NOT_RECORDED
        split[label] = split.get(label, 0.0) + run.fit_seconds
    return split


def _hours(split: dict[str, float]) -> str:
    return "; ".join(f"{label}: {s / 3600:.2f} h" for label, s in split.items())


def machine_blocks(result: StudyResult) -> list[Block]:
    """Where every cell's trials and final fits ran, with the machine hours on each."""
    order = sorted(result.cells, key=lambda c: (result.config.models.index(c.model), c.size))
    totals: dict[str, float] = {}
    for cell in order:
        for split in (cell.tuning.machines, _fit_machines(cell)):
            for label, s in split.items():
                totals[label] = totals.get(label, 0.0) + s
    blocks: list[Block] = [Heading(2, "Where it ran")]
    if len(totals) == 1:
        ((label, seconds),) = totals.items()
        blocks.append(
            Para(
                f"Every trial and final fit ran on one kind of machine: {label} "
                f"({seconds / 3600:.2f} h)."
            )
        )
        return blocks
    blocks.append(Para(f"Machine hours by hardware: {_hours(totals)}."))
    rows = tuple(
        (
            cell.model,
            str(cell.counted_size),
            _hours(cell.tuning.machines),
            _hours(_fit_machines(cell)),
        )
        for cell in order
    )
    blocks.append(Table(("model", "size", "trials", "final fits"), rows))
    return blocks


def parts_blocks(parts: Sequence[Part], accounted_hours: float) -> list[Block]:
    """The parts of a study run in parts, with the machine time spent (none: no blocks).

    ``accounted_hours`` is the trials and final fits of the report's cells; the parts' sum is
    the time spent, which also counts work run again or cut off at a stop, and cells not done.
    """
    if not parts:
        return []
    spent = hours_spent(parts)
    return [
        Heading(2, "Parts of the run"),
        Para(
            f"The study ran in {plural(len(parts), 'part')}, each resumed from the storage "
            f"and seed records the previous one left; machine time spent: {spent:.2f} h, the "
            "sum of the parts. The trials and final fits of this report's cells "
            f"({accounted_hours:.2f} h, above) are less: a final fit run again replaces its "
            "record, a trial cut off at a stop counts to its latest epoch, and the parts also "
            "hold the work on cells not yet done."
        ),
        Table(
            tuple(c.replace("machine hours", "hours") for c in PART_COLUMNS),
            tuple(part_rows(parts)),
        ),
    ]


def _protocol_lines(result: StudyResult) -> tuple[str, str]:
    """The settings' lines on the tuning holdout and on the test protocol(s)."""
    cfg = result.config
    trials = (
        f"tuning: {cfg.n_trials} finished trials per cell (TPE, seed {cfg.seed}, "
        f"{cfg.pruner} pruning; trial 0 is the model's published configuration), "
        f"objective: {_objective(result)} "
    )
    seeds = f"test: {plural(cfg.n_seeds, 'seed')} per cell retrained on the full training data; "
    if result.kind == FILES:
        return (
            trials + "of the full ranking on the tuning holdout (a seeded "
            f"{DEFAULT_HOLDOUT_FRACTION:.0%} of each user's training items"
            + (
                ""
                if cfg.holdout_users is None
                else f", scored for a seeded sample of {cfg.holdout_users} users, the same "
                "for every model"
            )
            + "; the test set is never read while tuning)",
            seeds + "full ranking over all items, training items excluded, "
            f"{result.n_test} test users with {result.n_test_pairs} test pairs",
        )
    return (
        trials + "of the sampled protocol on the tuning holdout (leave-one-out applied to the "
        "training data; the test set is never read while tuning)",
        seeds + f"{result.n_test} test users; sampled protocol with {result.n_negatives} "
        "negatives per user and the full-catalog protocol",
    )


def report_blocks(result: StudyResult, parts: Sequence[Part] = ()) -> list[Block]:
    """Every block of the report, in order; ``parts`` those of a study run in parts."""
    cfg = result.config
    k = cfg.k
    retrain_s = sum(float(c.fit_seconds.sum()) for c in result.cells)
    tuning_s = sum(c.tuning.trial_seconds for c in result.cells)
    published = _published(result)
    tuning_line, test_line = _protocol_lines(result)
    *first, last = dict.fromkeys(
        f"{_METRIC_NAMES[m]}@{k}" for p in result.protocols for m in PROTOCOL_METRICS[p]
    )
    plotted = f"{', '.join(first)} and {last}"
    loo = result.kind == LEAVE_ONE_OUT
    done = {(c.model, c.size) for c in result.cells}
    missing = [f"{m} {d}" for d in cfg.dims for m in cfg.models if (m, d) not in done]
    planned = len(cfg.dims) * len(cfg.models)
    blocks: list[Block] = [
        Heading(
            1,
            f"dotrec study: {result.dataset}"
            + (f" (interim: {len(done)} of {planned} cells)" if missing else ""),
        ),
    ]
    if missing:
        blocks.append(
            Para(
                f"Interim report: {len(done)} of {planned} cells are done; not yet: "
                f"{', '.join(missing)}. At a size with a cell not yet done, the comparison is "
                "between the finished cells only, and the figures stop where the cells do; "
                "the study's own report follows when every cell is done."
            )
        )
    blocks += [
        Bullets(
            (
                f"models: {', '.join(cfg.models)}; embedding sizes: "
                f"{', '.join(map(str, cfg.dims))}",
                tuning_line
                + (
                    f"; searched epoch ranges scaled by {cfg.epoch_scale:g}"
                    if cfg.epoch_scale != 1.0
                    else ""
                ),
                test_line,
                f"time: this run {result.wall_seconds:.0f} s wall; the study's trials "
                f"{tuning_s:.0f} s and its final fits {retrain_s:.0f} s, "
                f"{(tuning_s + retrain_s) / 3600:.1f} machine hours in total (over all runs; "
                "finished work is reused, not recomputed)"
                + (
                    f"; machine time spent over {plural(len(parts), 'part')} of the run: "
                    f"{hours_spent(parts):.1f} h (Parts of the run)"
                    if parts
                    else ""
                ),
                f"storage: {result.storage}; threads: {cfg.threads}",
                f"{machine_line()}; dotrec {__version__}",
            )
        ),
        Heading(2, "Results"),
        Para(
            f"Mean ± standard deviation over {plural(cfg.n_seeds, 'seed')} on the test set. "
            "Rows marked published are numbers reported in the cited papers on the same data "
            "and protocol, not results of this study."
            if published
            else f"Mean ± standard deviation over {plural(cfg.n_seeds, 'seed')} on the test set. "
            f"No published numbers are shown: none are on {result.dataset} with this protocol."
        ),
        results_table(result),
        Para(SIZE_ACCOUNTING),
    ]
    if published:
        blocks.append(
            Bullets(
                tuple(f"[{i + 1}] {ref}" for i, ref in enumerate(_references(published)))
                + tuple(
                    f"published {p.model}"
                    + ("" if p.size is None else f" at size {p.size}")
                    + f": {p.note}"
                    for p in published
                    if p.note
                )
            )
        )
    blocks += comparison_blocks(result)
    blocks += [
        Heading(2, "Figures"),
        Para(
            f"{plotted} against embedding size (the layout of Rendle et al. 2020, Figure 2), "
            "with published numbers "
            + (
                "as large markers, one shape per source (a star for the first)"
                if loo
                else "as a grey band from the lowest to the highest (they have no embedding size)"
            )
            + "; and fit time against quality."
        ),
        Image(QUALITY_PNG, f"{plotted} against embedding size"),
        Image(TIME_PNG, "fit time against " + ("sampled NDCG" if loo else f"NDCG@{k}")),
        Heading(2, "Best hyperparameters"),
        Para(
            f"Each cell's configuration is the best of its first {cfg.n_trials} finished "
            "trials on the tuning holdout."
        ),
        hyperparameter_table(result),
        *machine_blocks(result),
        *parts_blocks(parts, (tuning_s + retrain_s) / 3600),
    ]
    return blocks


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Table):
            lines = [
                "| " + " | ".join(map(_md_cell, b.headers)) + " |",
                "|" + "---|" * len(b.headers),
            ]
            lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in b.rows]
            out.append("\n".join(lines))
        else:
            out.append(f"![{b.alt}]({b.file})")
    return "\n\n".join(out) + "\n"


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;}"
    "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
    "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}img{max-width:100%}"
)


def render_html(blocks: list[Block], images: dict[str, bytes], title: str) -> str:
    esc = html.escape
    out = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{_CSS}</style></head><body>"
    ]
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{esc(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{esc(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{esc(h)}</th>" for h in b.headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in b.rows
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        else:
            data = base64.b64encode(images[b.file]).decode("ascii")
            out.append(
                f"<figure><img src='data:image/png;base64,{data}' alt='{esc(b.alt)}'>"
                f"<figcaption>{esc(b.file)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(
    result: StudyResult, out: str | Path, parts: Sequence[Part] = ()
) -> tuple[Path, Path]:
    """Write the figures, ``report.md`` and ``report.html`` into ``out`` (atomically).

    ``parts``: the recorded parts of a study run in parts (:func:`dotrec.study.parts.load_parts`).
    """
    out = Path(out)
    images = {QUALITY_PNG: plot_quality(result), TIME_PNG: plot_time(result)}
    for name, data in images.items():
        atomic_write_bytes(out / name, data)
    blocks = report_blocks(result, parts)
    md, page = out / MD_FILE, out / HTML_FILE
    atomic_write_bytes(md, render_markdown(blocks).encode())
    atomic_write_bytes(
        page, render_html(blocks, images, f"dotrec study: {result.dataset}").encode()
    )
    return md, page

"""The study report: ``report.md`` and a self-contained ``report.html``, with PNG figures.

Both files render the same blocks: the settings, the results table (mean and standard
deviation over seeds, both protocols, fit time; published numbers in their own labelled rows),
the paired comparison of dot product against learned similarity in numbers and in words, the
figures (HR@k and NDCG@k against embedding size, the paper's Figure 2; fit time against
quality) and the best hyperparameters of every cell. The HTML embeds the PNGs, so it is one file.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dotrec._version import __version__
from dotrec.artifacts import atomic_write_bytes
from dotrec.machine import machine_line
from dotrec.study.driver import Cell, StudyResult
from dotrec.study.published import Published, published_for
from dotrec.study.stats import Comparison, Paired, comparisons
from dotrec.tune.runner import redact

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

_METRIC_NAMES = {"ndcg": "NDCG", "hr": "HR", "rr": "MRR"}


def _published(result: StudyResult) -> list[Published]:
    """Published rows comparable with ``result`` (they are all HR@10 / NDCG@10)."""
    if result.config.k != 10:
        return []
    return published_for(result.dataset, result.config.models)


def _plural(n: int, word: str) -> str:
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
    objective = f"holdout {_METRIC_NAMES[result.config.metric]}@{k}"
    metrics = (("sampled", "hr"), ("sampled", "ndcg"), ("full", "hr"), ("full", "ndcg"))
    headers = (
        "model",
        "size",
        *(() if compact else ("width",)),
        *(f"{p} {_METRIC_NAMES[m]}@{k}" for p, m in metrics),
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
                    "ours" if compact else f"ours, {_plural(len(cell.runs), 'seed')}",
                )
            )
        for p in published:
            if p.model == model:
                rows.append(
                    (
                        model,
                        str(p.size),
                        *(() if compact else ("-",)),
                        f"{p.hr:.4f}",
                        f"{p.ndcg:.4f}",
                        "-",
                        "-",
                        "-",
                        *(() if compact else ("-",)),
                        f"published [{refs.index(p.source) + 1}]",
                    )
                )
    return Table(headers, tuple(rows))


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
    name = (
        f"{'sampled' if p.protocol == 'sampled' else 'full-catalog'} {_METRIC_NAMES[p.metric]}@{k}"
    )
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
                for proto, m in (("sampled", "ndcg"), ("sampled", "hr"), ("full", "ndcg"))
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


def plot_quality(result: StudyResult) -> bytes:
    """PNG: HR@k and NDCG@k against embedding size, per model, for both protocols."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = result.config.k
    fig = Figure(figsize=(10, 7.5), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    published = _published(result)
    colors = {m: f"C{i}" for i, m in enumerate(result.config.models)}
    sizes = sorted({c.counted_size for c in result.cells} | {p.size for p in published})
    for row, protocol in enumerate(("sampled", "full")):
        for col, metric in enumerate(("hr", "ndcg")):
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
            if protocol == "sampled":
                for p in published:
                    ax.plot(
                        [p.size],
                        [p.hr if metric == "hr" else p.ndcg],
                        marker="*",
                        markersize=12,
                        linestyle="none",
                        color=colors[p.model],
                        markeredgecolor="black",
                        label=f"{p.model} (published)",
                    )
            ax.set_xscale("log", base=2)
            ax.set_xticks(sizes)
            ax.set_xticklabels([str(s) for s in sizes])
            ax.set_xlabel("embedding size (paper accounting)")
            ax.set_ylabel(f"{_METRIC_NAMES[metric]}@{k}")
            ax.set_title(f"{protocol} protocol")
            ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{result.dataset}: quality against embedding size (mean ± sd over seeds)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_time(result: StudyResult) -> bytes:
    """PNG: mean fit time against sampled NDCG@k, one point per cell, labelled by size."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = result.config.k
    fig = Figure(figsize=(7, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, model in enumerate(result.config.models):
        cells = sorted((c for c in result.cells if c.model == model), key=lambda c: c.counted_size)
        if not cells:
            continue
        xs = [c.fit_seconds.mean() for c in cells]
        ys = [c.metric("sampled", f"ndcg@{k}").mean() for c in cells]
        ax.plot(xs, ys, marker="o", color=f"C{i}", label=model)
        for c, x, y in zip(cells, xs, ys, strict=True):
            ax.annotate(
                str(c.counted_size), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7
            )
    ax.set_xscale("log")
    ax.set_xlabel("fit seconds on the full training data (mean over seeds)")
    ax.set_ylabel(f"sampled NDCG@{k}")
    ax.set_title(f"{result.dataset}: fit time against quality (labels: embedding size)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def report_blocks(result: StudyResult) -> list[Block]:
    """Every block of the report, in order."""
    cfg = result.config
    k = cfg.k
    retrain_s = sum(float(c.fit_seconds.sum()) for c in result.cells)
    tuning_s = sum(c.tuning.trial_seconds for c in result.cells)
    published = _published(result)
    blocks: list[Block] = [
        Heading(1, f"dotrec study: {result.dataset}"),
        Bullets(
            (
                f"models: {', '.join(cfg.models)}; embedding sizes: "
                f"{', '.join(map(str, cfg.dims))}",
                f"tuning: {cfg.n_trials} finished trials per cell (TPE, seed {cfg.seed}, "
                f"{cfg.pruner} pruning; trial 0 is the model's published configuration), "
                f"objective: {_METRIC_NAMES[cfg.metric]}@{k} of the sampled protocol on the "
                "tuning holdout (leave-one-out applied to the training data; the test set is never "
                "read while tuning)"
                + (
                    f"; searched epoch ranges scaled by {cfg.epoch_scale:g}"
                    if cfg.epoch_scale != 1.0
                    else ""
                ),
                f"test: {_plural(cfg.n_seeds, 'seed')} per cell retrained on the full training "
                f"data; {result.n_test} test users; sampled protocol with {result.n_negatives} "
                "negatives per user and the full-catalog protocol",
                f"time: this run {result.wall_seconds:.0f} s wall; the study's trials "
                f"{tuning_s:.0f} s and its final fits {retrain_s:.0f} s in total (over all runs; "
                "finished work is reused, not recomputed)",
                f"storage: {redact(result.storage)}; threads: {cfg.threads}",
                f"{machine_line()}; dotrec {__version__}",
            )
        ),
        Heading(2, "Results"),
        Para(
            f"Mean ± standard deviation over {_plural(cfg.n_seeds, 'seed')} on the test set. "
            "Rows marked published are numbers reported in the cited papers on the same data "
            "and protocol, not results of this study."
            if published
            else f"Mean ± standard deviation over {_plural(cfg.n_seeds, 'seed')} on the test set. "
            f"No published numbers are shown: none are on {result.dataset} with this protocol."
        ),
        results_table(result),
        Para(SIZE_ACCOUNTING),
    ]
    if published:
        blocks.append(
            Bullets(
                tuple(f"[{i + 1}] {ref}" for i, ref in enumerate(_references(published)))
                + tuple(f"published {p.model} at size {p.size}: {p.note}" for p in published)
            )
        )
    blocks += comparison_blocks(result)
    blocks += [
        Heading(2, "Figures"),
        Para(
            f"HR@{k} and NDCG@{k} against embedding size (the layout of Rendle et al. 2020, "
            "Figure 2), with published numbers as stars; and fit time against quality."
        ),
        Image(QUALITY_PNG, f"HR@{k} and NDCG@{k} against embedding size"),
        Image(TIME_PNG, "fit time against sampled NDCG"),
        Heading(2, "Best hyperparameters"),
        Para(
            f"Each cell's configuration is the best of its first {cfg.n_trials} finished "
            "trials on the tuning holdout."
        ),
        hyperparameter_table(result),
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


def write_report(result: StudyResult, out: str | Path) -> tuple[Path, Path]:
    """Write the figures, ``report.md`` and ``report.html`` into ``out`` (atomically)."""
    out = Path(out)
    images = {QUALITY_PNG: plot_quality(result), TIME_PNG: plot_time(result)}
    for name, data in images.items():
        atomic_write_bytes(out / name, data)
    blocks = report_blocks(result)
    md, page = out / MD_FILE, out / HTML_FILE
    atomic_write_bytes(md, render_markdown(blocks).encode())
    atomic_write_bytes(
        page, render_html(blocks, images, f"dotrec study: {result.dataset}").encode()
    )
    return md, page

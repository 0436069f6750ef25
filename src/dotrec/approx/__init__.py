"""The learn-a-dot-product experiment (Rendle et al. 2020, section 4, Figure 3).

Can an MLP that sees two true embeddings learn their dot product? :func:`make_dataset` draws the
synthetic data, :func:`~dotrec.approx.mlp.train_mlp` trains and evaluates the MLP (torch is
imported only then), :func:`run_grid` runs a resumable grid over ``d x n_users x
first_layer_mult`` and :func:`write_outputs` writes the tables, heatmaps and summary.
"""

from dotrec.approx.data import (
    LABEL_STD,
    N_FRESH,
    PAIRS_PER_USER,
    TARGET_STD,
    TEST_FRACTION,
    DotDataset,
    embedding_sigma,
    make_dataset,
    pair_dots,
    rmse,
    sample_pairs,
)
from dotrec.approx.grid import GridSpec, RunKey, baseline_rmse, run_grid
from dotrec.approx.report import aggregate, summary_markdown, trends, verdict, write_outputs

__all__ = [
    "LABEL_STD",
    "N_FRESH",
    "PAIRS_PER_USER",
    "TARGET_STD",
    "TEST_FRACTION",
    "DotDataset",
    "GridSpec",
    "RunKey",
    "aggregate",
    "baseline_rmse",
    "embedding_sigma",
    "make_dataset",
    "pair_dots",
    "rmse",
    "run_grid",
    "sample_pairs",
    "summary_markdown",
    "trends",
    "verdict",
    "write_outputs",
]

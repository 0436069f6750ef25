"""Published numbers shown beside a study's own, always labelled as published.

Only results on the same data and protocol are listed: the NCF ml-1m split (He et al. 2017)
with its 99 sampled negatives per test user, HR@10 and NDCG@10. They are never mixed into our
means; the report prints them in their own rows with the source.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    """One published result: a model at an embedding size (paper accounting) on a dataset."""

    dataset: str
    model: str
    size: int
    hr: float
    ndcg: float
    source: str
    note: str


RENDLE_2020 = (
    "S. Rendle, W. Krichene, L. Zhang, J. Anderson. Neural Collaborative Filtering "
    "vs. Matrix Factorization Revisited. RecSys 2020."
)
HE_2017 = (
    "X. He, L. Liao, H. Zhang, L. Nie, X. Hu, T.-S. Chua. Neural Collaborative Filtering. WWW 2017."
)
ISSUE_4 = (
    "Tuned iALS on the NCF ml-1m split, as quoted in dotrec issue #4 (Rendle et al.'s "
    "iALS results); the original table was not re-checked for this report."
)

PUBLISHED: tuple[Published, ...] = (
    Published(
        "ml-1m",
        "mf",
        192,
        0.7294,
        0.4523,
        RENDLE_2020,
        "dot-product MF with biases, SGD, embedding dim 192, mean of repeated runs",
    ),
    Published("ml-1m", "ials", 192, 0.7310, 0.4521, ISSUE_4, "embedding dim 192"),
    Published(
        "ml-1m",
        "neumf",
        192,
        0.730,
        0.447,
        HE_2017,
        "NeuMF with pretraining, predictive factor k = 64 (size 3k = 192)",
    ),
)


def published_for(dataset: str, models: tuple[str, ...]) -> list[Published]:
    """The published results comparable with a study of ``models`` on ``dataset``."""
    return [p for p in PUBLISHED if p.dataset == dataset and p.model in models]

"""Published numbers shown beside a study's own, always labelled as published.

Only results on the same data and protocol are listed:

* ml-1m: the NCF split (He et al. 2017) with its 99 sampled negatives per test user, HR@10 and
  NDCG@10 (the study's ``"sampled"`` protocol), for dotrec's own models at a stated size;
* gowalla: LightGCN's split (He et al. 2020) under full ranking over all items with training
  items excluded, Recall@20 and NDCG@20 (the study's ``"ranking"`` protocol). These are
  reference points for models dotrec does not have (LightGCN, NGCF, ...), without a size.

They are never mixed into our means; the report prints them in their own rows with the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dotrec.models import MODELS


@dataclass(frozen=True)
class Published:
    """One published result of a model on a dataset under one of the study's protocols.

    ``model`` is a dotrec model name (``mf``, ``ials``, ...) or the paper's name of a model
    dotrec does not have (``LightGCN``); ``size`` is the embedding size in the paper
    accounting, None where it is not a dotrec model or not stated. ``metrics`` maps
    ``"METRIC@K"`` (``hr@10``, ``recall@20``, ...; one ``K`` per row) to the published value.
    ``test_selected`` marks a result whose hyperparameters were chosen on the test set.
    ``by`` is the short citation shown in figure legends ("Rendle et al. 2020"); each
    citation gets its own marker there, so the sources stay apart.
    """

    dataset: str
    model: str
    size: int | None
    metrics: Mapping[str, float]
    protocol: str
    source: str
    note: str = ""
    test_selected: bool = False
    by: str = ""

    @property
    def k(self) -> int:
        """The cut-off of the row's metrics."""
        return int(next(iter(self.metrics)).split("@")[1])


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
LIGHTGCN_2020 = (
    "X. He, K. Deng, X. Wang, Y. Li, Y. Zhang, M. Wang. LightGCN: Simplifying and Powering "
    "Graph Convolution Network for Recommendation. SIGIR 2020."
)
NGCF_2019 = (
    "X. Wang, X. He, M. Wang, F. Feng, T.-S. Chua. Neural Graph Collaborative Filtering. "
    "SIGIR 2019."
)
BARS_2022 = "J. Zhu et al. BARS: Towards Open Benchmarking for Recommender Systems. SIGIR 2022."
GFCF_2021 = "Y. Shen et al. How Powerful is Graph Convolution for Recommendation? CIKM 2021."
ULTRAGCN_2021 = (
    "K. Mao et al. UltraGCN: Ultra Simplification of Graph Convolutional Networks for "
    "Recommendation. CIKM 2021."
)
SIMPLEX_2021 = (
    "K. Mao et al. SimpleX: A Simple and Strong Baseline for Collaborative Filtering. CIKM 2021."
)


def _gowalla(
    model: str, recall: float, ndcg: float, source: str, note: str = "", test_selected: bool = False
) -> Published:
    """A row on LightGCN's Gowalla split: Recall@20 and NDCG@20 under full ranking."""
    return Published(
        "gowalla",
        model,
        None,
        {"recall@20": recall, "ndcg@20": ndcg},
        "ranking",
        source,
        note,
        test_selected,
    )


PUBLISHED: tuple[Published, ...] = (
    Published(
        "ml-1m",
        "mf",
        192,
        {"hr@10": 0.7294, "ndcg@10": 0.4523},
        "sampled",
        RENDLE_2020,
        "dot-product MF with biases, SGD, embedding dim 192, mean of repeated runs",
        by="Rendle et al. 2020",
    ),
    Published(
        "ml-1m",
        "ials",
        192,
        {"hr@10": 0.7310, "ndcg@10": 0.4521},
        "sampled",
        ISSUE_4,
        "embedding dim 192",
        by="Rendle et al. 2020",
    ),
    Published(
        "ml-1m",
        "neumf",
        192,
        {"hr@10": 0.730, "ndcg@10": 0.447},
        "sampled",
        HE_2017,
        "NeuMF with pretraining, predictive factor k = 64 (size 3k = 192)",
        by="He et al. 2017",
    ),
    _gowalla("LightGCN", 0.1830, 0.1554, LIGHTGCN_2020, note="the LightGCN paper's Table 4"),
    _gowalla("NGCF", 0.1570, 0.1327, NGCF_2019),
    _gowalla(
        "Mult-VAE",
        0.1641,
        0.1335,
        LIGHTGCN_2020,
        note="as reported in the LightGCN paper's comparison",
    ),
    _gowalla("MF (BPR)", 0.1291, 0.1109, NGCF_2019),
    _gowalla("NeuMF", 0.1399, 0.1212, NGCF_2019),
    _gowalla("EASE", 0.1765, 0.1467, BARS_2022),
    _gowalla("MF-BPR (retuned)", 0.1627, 0.1378, BARS_2022, note="MF-BPR retuned by BARS"),
    _gowalla("GF-CF", 0.1849, 0.1518, GFCF_2021),
    _gowalla("UltraGCN", 0.1862, 0.1580, ULTRAGCN_2021),
    _gowalla(
        "SimpleX",
        0.1872,
        0.1557,
        SIMPLEX_2021,
        note="its configuration was selected on the test set (no separate validation split), "
        "so it is an optimistic reference",
        test_selected=True,
    ),
)


def published_for(
    dataset: str, models: tuple[str, ...], k: int, protocols: tuple[str, ...]
) -> list[Published]:
    """The published results comparable with a study of ``models`` on ``dataset`` at cut-off
    ``k`` under ``protocols``: rows of the study's own models, and reference rows of models
    dotrec does not have."""
    return [
        p
        for p in PUBLISHED
        if p.dataset == dataset
        and p.k == k
        and p.protocol in protocols
        and (p.model in models or p.model not in MODELS)
    ]

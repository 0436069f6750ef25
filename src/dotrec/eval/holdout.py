"""The tuning holdout and its score, for both kinds of split.

Early stopping (:mod:`dotrec.train`) and tuning (:mod:`dotrec.tune`) choose on a holdout carved
from the training data and read one number from it; which holdout and which protocol depend on
the split:

* a leave-one-out :class:`~dotrec.data.splits.Split`: ``split.holdout(seed, negatives)`` (each
  user's latest training interaction) scored by the sampled protocol, ``ndcg``, ``hr`` or
  ``rr`` at ``k``;
* a :class:`~dotrec.data.splits.FileSplit` (many test items per user):
  ``split.holdout(seed)`` (a seeded 20% of each user's training items) scored by the LightGCN
  full ranking (:mod:`dotrec.eval.ranking`), ``ndcg`` or ``recall`` (``hr`` is read as
  recall, its many-item form) at ``k``.
"""

from __future__ import annotations

from typing import Any

from dotrec.data.splits import FileSplit, Split
from dotrec.errors import ConfigError
from dotrec.eval.protocols import evaluate_sampled
from dotrec.eval.ranking import evaluate_ranking

METRICS = ("ndcg", "hr", "rr", "recall")


def tuning_holdout(
    split: Split | FileSplit, seed: int, negatives: int, users: int | None = None
) -> Split | FileSplit:
    """The split's tuning holdout (module doc); ``negatives`` applies to leave-one-out only,
    ``users`` (a seeded sample of users whose held-out items are scored) to file splits only."""
    if isinstance(split, FileSplit):
        return split.holdout(seed, users=users)
    if users is not None:
        raise ConfigError(
            "holdout users applies to splits given by files; a leave-one-out holdout is "
            "scored by the sampled protocol, already cheap"
        )
    return split.holdout(seed, negatives)


def check_metric(split: Split | FileSplit, metric: str) -> None:
    """ConfigError unless ``metric`` can be read from this kind of split's holdout."""
    allowed = ("ndcg", "hr", "recall") if isinstance(split, FileSplit) else ("ndcg", "hr", "rr")
    if metric not in allowed:
        raise ConfigError(f"metric must be one of {', '.join(allowed)} here, got {metric!r}")


def holdout_score(model: Any, holdout: Split | FileSplit, metric: str, k: int) -> float:
    """Mean ``metric@k`` of ``model`` on ``holdout`` under the split's protocol."""
    check_metric(holdout, metric)
    if isinstance(holdout, FileSplit):
        res = evaluate_ranking(model, holdout, k=k)
        return float((res.ndcg if metric == "ndcg" else res.recall).mean())
    return float(getattr(evaluate_sampled(model, holdout, k=k), metric).mean())

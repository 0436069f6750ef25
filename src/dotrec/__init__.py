"""dotrec: recommendation with embeddings, dot product vs learned similarity.

Load interaction data, train and fairly tune dot-product models (SGD matrix factorization,
iALS) and learned-similarity models (GMF, MLP, NeuMF) behind one interface, evaluate them under
the NCF sampled protocol and full-catalog ranking, and serve top-K recommendations.
"""

from dotrec._version import __version__
from dotrec.data import (
    DATASETS,
    DataOptions,
    FileSplit,
    IdMap,
    Interactions,
    Split,
    SyntheticConfig,
    filter_interactions,
    generate,
    leave_one_out,
    load_dataset,
    load_file_split,
    read_ncf,
    read_table,
)
from dotrec.errors import ArtifactError, ConfigError, DataError, DotrecError, NotFittedError
from dotrec.eval.protocols import EvalResult, evaluate, evaluate_full, evaluate_sampled
from dotrec.eval.ranking import RankingResult, evaluate_ranking
from dotrec.models import (
    MODELS,
    DotProductModel,
    MatrixFactorization,
    Model,
    Popularity,
    load_model,
    load_seen,
)
from dotrec.recommend import Recommender

__all__ = [
    "FileSplit",
    "RankingResult",
    "evaluate_ranking",
    "load_file_split",
    "Recommender",
    "DataOptions",
    "filter_interactions",
    "NotFittedError",
    "DATASETS",
    "MODELS",
    "ArtifactError",
    "ConfigError",
    "DataError",
    "DotProductModel",
    "DotrecError",
    "EvalResult",
    "IdMap",
    "Interactions",
    "MatrixFactorization",
    "Model",
    "Popularity",
    "Split",
    "SyntheticConfig",
    "__version__",
    "evaluate",
    "evaluate_full",
    "evaluate_sampled",
    "generate",
    "leave_one_out",
    "load_dataset",
    "load_model",
    "load_seen",
    "read_ncf",
    "read_table",
]

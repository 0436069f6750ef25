"""Models: every model shares :class:`~dotrec.models.base.Model`'s interface."""

from dotrec.data.seen import load_seen
from dotrec.models.base import MODELS, DotProductModel, Model, load_model
from dotrec.models.ials import IALS
from dotrec.models.mf import MatrixFactorization
from dotrec.models.ncf import GMF, MLP, NeuMF  # torch is imported only when training
from dotrec.models.popularity import Popularity

__all__ = [
    "GMF",
    "IALS",
    "MLP",
    "MODELS",
    "DotProductModel",
    "MatrixFactorization",
    "Model",
    "NeuMF",
    "Popularity",
    "load_model",
    "load_seen",
]

"""Models: every model shares :class:`~dotrec.models.base.Model`'s interface."""

from dotrec.models.base import MODELS, DotProductModel, Model, load_model, load_seen
from dotrec.models.mf import MatrixFactorization
from dotrec.models.popularity import Popularity

__all__ = ["MODELS", "DotProductModel", "MatrixFactorization", "Model", "Popularity", "load_model", "load_seen"]

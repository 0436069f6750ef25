"""The model interface shared by every dotrec model, its registry, and model save/load.

A model works in index space only. ``fit(train)`` takes one :class:`Interactions` and returns
the model; ``score(user_indices, item_indices)`` scores equal-length pairs;
``score_all(user_indices)`` scores the whole catalog for a batch of users. Hyperparameters are
constructor keywords, checked in ``__init__``; ``config()`` returns them as a JSON-safe dict and
``from_config`` rebuilds the model.

Artifacts are directories with ``model.json`` and ``arrays.npz`` (see :mod:`dotrec.artifacts`);
:func:`load_model` reads any model's artifact.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from dotrec.artifacts import load_artifact, save_artifact
from dotrec.data.interactions import Interactions
from dotrec.data.seen import SEEN_FILE, seen_arrays
from dotrec.errors import ArtifactError, ConfigError, NotFittedError, NotSupportedError

M = TypeVar("M", bound="Model")

#: Float32 elements per intermediate array when scoring (the default ``batch_size`` of
#: :meth:`Model.score_all`).
SCORE_BUDGET = 1 << 22

#: Called after every epoch as ``on_epoch(epoch, model)`` with the 1-based epoch number.
#: Progress bars, periodic evaluation, checkpoints and tuning pruners hook in here.
EpochCallback = Callable[[int, "Model"], None]

MODELS: dict[str, type[Model]] = {}


def register(cls: type[M]) -> type[M]:
    """Class decorator: make a model loadable by its ``name``."""
    MODELS[cls.name] = cls
    return cls


class Model(ABC):
    """Base class of dotrec models."""

    #: Registry key, also the CLI name (``dotrec train NAME``).
    name: ClassVar[str]

    #: The constructor parameter that sets the model's width (``--embedding-dim`` or
    #: ``--factor`` on the command line), None for a model without one.
    size_param: ClassVar[str | None] = None
    #: Numbers per user or item vector per unit of ``size_param``, as Rendle et al. (2020)
    #: count them (MF, iALS, GMF 1; MLP 2; NeuMF 3): ``size = size_multiplier * width``.
    size_multiplier: ClassVar[int] = 1

    n_users: int = 0
    n_items: int = 0

    def __init__(self) -> None:
        self.n_users = 0
        self.n_items = 0
        #: Epochs trained so far (restored from a checkpoint's ``fit.epochs``).
        self.epochs_done = 0
        self.train_fingerprint: str | None = None
        self.fit_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ config
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Hyperparameters as a JSON-safe dict; ``type(self).from_config(cfg)`` rebuilds."""

    @classmethod
    def from_config(cls: type[M], config: dict[str, Any]) -> M:
        """Rebuild an (unfitted) model from :meth:`config` output."""
        try:
            return cls(**config)
        except TypeError as e:
            raise ConfigError(f"{cls.name}: {e}") from None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ training
    def fit(
        self: M, train: Interactions, *, on_epoch: EpochCallback | None = None, resume: bool = False
    ) -> M:
        """Train on ``train`` and return ``self``.

        With ``resume=True`` a model loaded from a checkpoint continues from ``epochs_done``
        up to ``epochs`` (models whose epoch ``e`` draws from a stream keyed by ``(seed, e)``
        then end bit-identical to an uninterrupted run); otherwise training starts afresh.
        """
        fingerprint = train.fingerprint()
        if resume and self.epochs_done and fingerprint != self.train_fingerprint:
            raise ArtifactError("cannot resume: the checkpoint was trained on other interactions")
        prior = float(self.fit_info.get("fit_seconds", 0.0)) if resume else 0.0
        if not resume:
            self.epochs_done = 0
            self.fit_info = {}
        self.n_users, self.n_items = train.n_users, train.n_items
        self.train_fingerprint = fingerprint
        start = time.perf_counter()
        self._fit(train, on_epoch)
        self.fit_info = {**self.fit_info, "fit_seconds": prior + time.perf_counter() - start}
        return self

    @abstractmethod
    def _fit(self, train: Interactions, on_epoch: EpochCallback | None) -> None:
        """Model-specific training; called by :meth:`fit`."""

    # ------------------------------------------------------------------ scoring
    def _pairs(
        self, user_indices: npt.ArrayLike, item_indices: npt.ArrayLike
    ) -> tuple[np.ndarray, np.ndarray]:
        """The pairs :meth:`score` takes, as int64 arrays of one shape (fitted models only)."""
        self._check_fitted()
        u = np.asarray(user_indices, dtype=np.int64)
        i = np.asarray(item_indices, dtype=np.int64)
        if u.shape != i.shape:
            raise ValueError("user_indices and item_indices must have the same length")
        return u, i

    def _check_fitted(self) -> None:
        if self.n_items == 0:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load_model()")

    @property
    def size(self) -> int | None:
        """The model's embedding size as the paper counts it (None without a width)."""
        if self.size_param is None:
            return None
        return self.size_multiplier * int(self.config()[self.size_param])

    # ------------------------------------------------------------------ fold-in
    def fold_in(self, item_lists: Sequence[npt.ArrayLike]) -> np.ndarray:
        """User rows for users the model was not trained on, without retraining.

        ``item_lists[r]`` holds the item indices user ``r`` interacted with. Returns float32
        rows of shape (len(item_lists), width) that stand in for those users' learned
        parameters; :meth:`score_rows` scores the catalog for them. Each model fits them to its
        own training loss with its item side fixed (see the model's doc).
        """
        raise NotSupportedError(f"model {self.name!r} cannot fold in new users")

    def score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Scores of every item, shape (len(rows), n_items), for rows made by :meth:`fold_in`."""
        raise NotSupportedError(f"model {self.name!r} cannot fold in new users")

    def _fold_in_items(self, item_lists: Sequence[npt.ArrayLike]) -> list[np.ndarray]:
        """Each list as sorted unique int64 indices; ConfigError if empty or out of range."""
        self._check_fitted()
        out = []
        for r, items in enumerate(item_lists):
            a = np.unique(np.asarray(items, dtype=np.int64))
            if not len(a):
                raise ConfigError(f"fold-in: user {r} has no items")
            if a[0] < 0 or a[-1] >= self.n_items:
                raise ConfigError(
                    f"fold-in: user {r} has an item index outside [0, {self.n_items})"
                )
            out.append(a)
        return out

    @abstractmethod
    def score(self, user_indices: npt.ArrayLike, item_indices: npt.ArrayLike) -> np.ndarray:
        """Scores of equal-length arrays of (user, item) index pairs, as float32 of shape (n,)."""

    def score_candidates(
        self, user_indices: npt.ArrayLike, item_indices: npt.ArrayLike
    ) -> np.ndarray:
        """Scores of a candidate list per user: ``items`` has shape (n_users, m) -> (n_users, m).

        Used by the sampled protocol; models override it with a faster batched path.
        """
        users = np.asarray(user_indices, dtype=np.int64)
        items = np.asarray(item_indices, dtype=np.int64)
        return self.score(np.repeat(users, items.shape[1]), items.reshape(-1)).reshape(items.shape)

    def score_all(self, user_indices: npt.ArrayLike, batch_size: int | None = None) -> np.ndarray:
        """Scores of every item for each user: float32 array of shape (len(users), n_items).

        ``batch_size`` means the same for every model: the most float32 elements any
        intermediate array may hold (default :data:`SCORE_BUDGET`); users (and, where one
        user's pass is larger, items) are processed in blocks within it. The default scores
        pairs through :meth:`score`; models override it with a faster path.
        """
        self._check_fitted()
        users = np.asarray(user_indices, dtype=np.int64)
        out = np.empty((len(users), self.n_items), dtype=np.float32)
        items = np.arange(self.n_items, dtype=np.int64)
        per = max(1, (batch_size or SCORE_BUDGET) // max(1, self.n_items))
        for s in range(0, len(users), per):
            u = users[s : s + per]
            out[s : s + len(u)] = self.score(
                np.repeat(u, self.n_items), np.tile(items, len(u))
            ).reshape(len(u), -1)
        return out

    # ------------------------------------------------------------------ artifacts
    @abstractmethod
    def _arrays(self) -> dict[str, np.ndarray]:
        """The arrays that define the fitted model (saved to ``arrays.npz``)."""

    @abstractmethod
    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Set fitted state from :meth:`_arrays` output."""

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        dataset: str | None = None,
        train: Interactions | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Write the artifact directory atomically (``model.json`` + ``arrays.npz``).

        With ``train``, the id maps and each user's training items are stored beside the
        model (``seen.npz``), so that serving needs no dataset (:func:`load_seen`).
        """
        self._check_fitted()
        meta = {
            "model": self.name,
            "config": self.config(),
            "seed": self.config().get("seed"),
            "dataset": {
                "name": dataset,
                "fingerprint": self.train_fingerprint,
                "n_users": self.n_users,
                "n_items": self.n_items,
            },
            "fit": self.fit_info,
            **(extra or {}),
        }
        aux = None if train is None else {SEEN_FILE: seen_arrays(train)}
        save_artifact(path, meta, self._arrays(), aux=aux)

    @classmethod
    def load(cls: type[M], path: str | os.PathLike[str]) -> M:
        """Read an artifact written by :meth:`save` (checks sha256 and model type)."""
        model = load_model(path)
        if not isinstance(model, cls):
            raise ArtifactError(f"{path}: holds a {model.name!r} model, not {cls.name!r}")
        return model


def load_model(path: str | os.PathLike[str], *, mmap: bool = False) -> Model:
    """Load any dotrec model artifact; raises :class:`ArtifactError` if it is not valid.

    ``mmap=True`` maps the arrays from the file, read-only (:func:`dotrec.artifacts.load_artifact`):
    for serving a catalog larger than memory, or several server workers sharing one copy. Such a
    model scores and recommends but cannot be trained further.
    """
    import dotrec.models  # noqa: F401  (registers the built-in models)

    meta, arrays = load_artifact(path, mmap=mmap)
    name = meta.get("model")
    if name not in MODELS:
        raise ArtifactError(f"{path}: unknown model {name!r} (known: {', '.join(sorted(MODELS))})")
    cls = MODELS[name]
    try:
        model = cls.from_config(meta.get("config") or {})
    except ConfigError as e:
        raise ArtifactError(f"{path}/model.json: {e}") from None
    ds = meta.get("dataset") or {}
    model.n_users = int(ds.get("n_users") or 0)
    model.n_items = int(ds.get("n_items") or 0)
    model.train_fingerprint = ds.get("fingerprint")
    model.fit_info = meta.get("fit") or {}
    try:
        model._restore(arrays)
    except (KeyError, ValueError) as e:
        raise ArtifactError(f"{path}/arrays.npz: does not match a {name!r} model ({e})") from None
    model.epochs_done = int(model.fit_info.get("epochs", 0))
    return model


def check_compatible(model: Model, train: Interactions, where: str = "model") -> None:
    """Raise if ``model`` was not fitted on an index space of ``train``'s shape."""
    if model.n_users != train.n_users or model.n_items != train.n_items:
        raise ArtifactError(
            f"{where}: fitted on {model.n_users} users x {model.n_items} items, but the dataset "
            f"has {train.n_users} x {train.n_items}; wrong dataset for this model?"
        )


class DotProductModel(Model):
    """A model whose score is ``global_bias + user_bias[u] + item_bias[i] + <p_u, q_i>``."""

    def __init__(self) -> None:
        super().__init__()
        self.user_factors = np.zeros((0, 0), np.float32)
        self.item_factors = np.zeros((0, 0), np.float32)
        self.user_bias = np.zeros(0, np.float32)
        self.item_bias = np.zeros(0, np.float32)
        self.global_bias = np.float32(0.0)

    def score(self, user_indices: npt.ArrayLike, item_indices: npt.ArrayLike) -> np.ndarray:
        u, i = self._pairs(user_indices, item_indices)
        out = np.einsum("ij,ij->i", self.user_factors[u], self.item_factors[i])
        return (out + self.user_bias[u] + self.item_bias[i] + self.global_bias).astype(np.float32)

    def score_candidates(
        self, user_indices: npt.ArrayLike, item_indices: npt.ArrayLike
    ) -> np.ndarray:
        self._check_fitted()
        u = np.asarray(user_indices, dtype=np.int64)
        i = np.asarray(item_indices, dtype=np.int64)
        # (n, m, d) @ (n, d, 1): one small matrix-vector product per user, batched in BLAS.
        dots = np.matmul(self.item_factors[i], self.user_factors[u][:, :, None])[..., 0]
        return dots + self.item_bias[i] + (self.user_bias[u] + self.global_bias)[:, None]

    def score_all(self, user_indices: npt.ArrayLike, batch_size: int | None = None) -> np.ndarray:
        self._check_fitted()
        u = np.asarray(user_indices, dtype=np.int64)
        out = np.empty((len(u), self.n_items), dtype=np.float32)
        per = max(1, (batch_size or SCORE_BUDGET) // max(1, self.n_items))
        for s in range(0, len(u), per):
            block = u[s : s + per]
            np.matmul(self.user_factors[block], self.item_factors.T, out=out[s : s + per])
            out[s : s + per] += self.item_bias[None, :]
            out[s : s + per] += (self.user_bias[block] + self.global_bias)[:, None]
        return out

    def score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows are ``[p_u, b_u]``: the user's factors with its bias as the last column."""
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.float32)
        out = rows[:, :-1] @ self.item_factors.T
        out += self.item_bias[None, :]
        out += (rows[:, -1] + self.global_bias)[:, None]
        return out.astype(np.float32, copy=False)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
            "user_bias": self.user_bias,
            "item_bias": self.item_bias,
            "global_bias": np.asarray(self.global_bias, dtype=np.float32),
        }

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        uf, itf = arrays["user_factors"], arrays["item_factors"]
        if uf.ndim != 2 or itf.ndim != 2 or uf.shape[1] != itf.shape[1]:
            raise ValueError("factor matrices must be 2-D with equal widths")
        if uf.shape[0] != self.n_users or itf.shape[0] != self.n_items:
            raise ValueError(
                f"factors {uf.shape} / {itf.shape} do not match "
                f"{self.n_users} users x {self.n_items} items in model.json"
            )
        self.user_factors = uf.astype(np.float32, copy=False)
        self.item_factors = itf.astype(np.float32, copy=False)
        self.user_bias = arrays["user_bias"].astype(np.float32, copy=False)
        self.item_bias = arrays["item_bias"].astype(np.float32, copy=False)
        self.global_bias = np.float32(arrays["global_bias"])
        if self.user_bias.shape != (self.n_users,) or self.item_bias.shape != (self.n_items,):
            raise ValueError("bias vectors do not match the factor matrices")

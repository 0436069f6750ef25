"""GMF, MLP and NeuMF: the learned-similarity models of He et al. (WWW 2017), in PyTorch.

Models (scores are logits; the predicted probability is their sigmoid)
    GMF     score(u, i) = w . (p_u * q_i) + b
    MLP     z_0 = [p_u ; q_i],  z_l = relu(W_l z_(l-1) + b_l) for l = 1..L,  score = w . z_L + b
    NeuMF   score(u, i) = w . [p^G_u * q^G_i ; z_L(p^M_u, q^M_i)] + b, with separate GMF and MLP
            embeddings, joined only in the last layer.
Sizes
    ``factor`` k is the "predictive factor": the GMF embedding width and the width of the MLP's
    last hidden layer. The MLP tower defaults to ``layers = [4k, 2k, k]`` hidden units over user
    and item embeddings of ``layers[0] / 2`` units each, so 2k by default: the paper's
    configuration (section 4.1: "32 -> 16 -> 8, and the embedding size is 16" for k = 8) and
    the size accounting of Rendle et al. (2020) that dotrec's comparisons use (MLP: 2k,
    NeuMF: 3k). The reference code's ``--layers [64,32,16,8]`` differs: it lists the
    concatenated embedding width first, which gives embeddings of 4k.
Training
    Binary cross-entropy on each training pair (label 1) and ``n_negatives`` items per pair
    drawn uniformly among the items the user has no training interaction with (label 0), drawn
    afresh every epoch, as in the NCF reference's ``get_train_instances``. The examples are
    shuffled and cut into mini-batches of ``batch_size``; each step minimises the batch's mean
    loss plus ``regularization / 2`` times the squared L2 norm of all embedding tables and
    weight matrices (not biases). The optimizer is dense Adam (``optimizer="adam"``: every
    parameter moves at every step, as in Keras) or Adam on the embedding rows a batch touches
    (``"lazy_adam"``), except for NeuMF with pretraining, which uses plain SGD (the paper,
    section 3.4.1). The step's gradients are written out by hand (``_ncf_train``); ``_forward``
    below is the reference they are tested against.
Initialisation
    Embeddings N(0, 0.01^2); hidden layers Glorot-uniform; the output layer LeCun-uniform;
    biases 0 (the Keras initialisers of the reference code). NeuMF with pretraining copies a
    fitted GMF's and MLP's weights, and its output layer is [0.5 w_GMF ; 0.5 w_MLP] with bias
    0.5 (b_GMF + b_MLP), so that before any step its logit is the mean of theirs.
Scoring
    NumPy only (no torch needed to load and serve). The MLP's first layer is split as
    W_1 [p_u ; q_i] + b_1 = (W_1u p_u) + (W_1i q_i + b_1); both halves are precomputed once
    per fitted model, so a pair costs one addition there and ``score_all`` runs the rest of the
    tower over user batches of bounded size. GMF folds w into the item embeddings.

Randomness: the initial weights come from ``rng(seed, NAME + "_init")``; epoch ``e`` draws
its negatives from ``rng(seed, NAME + "_negatives", e)`` and its shuffle from ``rng(seed,
NAME + "_shuffle", e)``, with NAME the model's name, so a NeuMF does not replay the negatives
its pretrained GMF and MLP of the same seed saw. Training draws nothing from torch's
generators. With a fixed thread count a CPU run is repeatable bit for bit.

References
----------
X. He, L. Liao, H. Zhang, L. Nie, X. Hu, T.-S. Chua. "Neural Collaborative Filtering".
WWW 2017, sections 3.2-3.4 (eq. 9-12) and the reference code
(github.com/hexiangnan/neural_collaborative_filtering: ``GMF.py``, ``MLP.py``, ``NeuMF.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from dotrec._blas import single_threaded_blas
from dotrec._torch import (
    check_device,
    check_precision,
    import_torch,
    resolve_device,
    warn_slow_bf16,
)
from dotrec.data.interactions import Interactions
from dotrec.data.negatives import training_negatives
from dotrec.errors import ConfigError
from dotrec.models._ncf_train import StepConfig, Trainer
from dotrec.models.base import SCORE_BUDGET, EpochCallback, Model, register
from dotrec.random import rng
from dotrec.validate import check_int, check_positive

if TYPE_CHECKING:
    import torch

#: Weight of each pretrained model in NeuMF's initial output layer (the paper's alpha).
PRETRAIN_ALPHA = 0.5
#: Optimizers of the NCF models: dense Adam (the paper's Keras semantics) or Adam on the
#: embedding rows a batch touches (see :mod:`dotrec.models._row_optim`).
OPTIMIZERS = ("adam", "lazy_adam")
#: float32 activations of one MLP scoring tile (2 MB: about a core's L2 cache).
_TILE = 1 << 19


def _check_layers(layers: Any) -> list[int]:
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise ConfigError(f"layers must be a list of positive integers, got {layers!r}")
    out = [check_int("layers entry", w) for w in layers]
    if not out:
        raise ConfigError("layers must name at least one hidden layer")
    if out[0] % 2:
        raise ConfigError(f"layers[0] must be even (it is twice the embedding width), got {out}")
    return out


def _forward(
    torch: Any,
    w: dict[str, torch.Tensor],
    users: torch.Tensor,
    items: torch.Tensor,
    n_hidden: int,
) -> torch.Tensor:
    """The models' logits in torch autograd form: the reference the hand-derived training
    step (:mod:`dotrec.models._ncf_train`) is tested against, and what
    :meth:`_NCFModel.score` computes in NumPy."""
    F = torch.nn.functional
    parts = []
    if "gmf.user_embedding" in w:
        parts.append(
            F.embedding(users, w["gmf.user_embedding"])
            * F.embedding(items, w["gmf.item_embedding"])
        )
    if "mlp.user_embedding" in w:
        z = torch.cat(
            [
                F.embedding(users, w["mlp.user_embedding"]),
                F.embedding(items, w["mlp.item_embedding"]),
            ],
            dim=1,
        )
        for layer in range(n_hidden):
            z = torch.relu(F.linear(z, w[f"mlp.{layer}.weight"], w[f"mlp.{layer}.bias"]))
        parts.append(z)
    z = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    return F.linear(z, w["output.weight"], w["output.bias"]).squeeze(1)


def _lbfgs_fold_in(
    torch: Any,
    logits: Any,
    start: np.ndarray,
    prior: Any,
    n_items: int,
    items: np.ndarray,
    w_neg: float,
    lam: float,
    steps: int,
) -> np.ndarray:
    """One user's fold-in (see :meth:`_NCFModel.fold_in`): ``steps`` L-BFGS iterations on
    softplus(-s) over ``items``, ``w_neg`` softplus(s) over the rest, lam/2 |x|^2 and the prior
    1/2 (x - start)' prior (x - start)."""
    F = torch.nn.functional
    positive = torch.zeros(n_items, dtype=torch.bool)
    positive[torch.from_numpy(items)] = True
    mean = torch.from_numpy(start)
    x = torch.tensor(start, requires_grad=True)
    opt = torch.optim.LBFGS([x], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Any:
        opt.zero_grad()
        s = logits(x)
        loss = F.softplus(-s[positive]).sum() + w_neg * F.softplus(s[~positive]).sum()
        d = x - mean
        loss = loss + 0.5 * lam * (x @ x) + 0.5 * (d @ (prior @ d))
        loss.backward()
        return loss

    opt.step(closure)
    out: np.ndarray = x.detach().numpy()
    return out


class _NCFModel(Model):
    """Training, scoring and artifacts shared by GMF, MLP and NeuMF (see the module doc)."""

    #: Which branches the model has: ("gmf",), ("mlp",) or ("gmf", "mlp").
    branches: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        factor: int,
        layers: list[int] | None,
        epochs: int,
        batch_size: int,
        n_negatives: int,
        learning_rate: float,
        regularization: float,
        seed: int,
        threads: int,
        optimizer: str,
        precision: str,
        device: str,
    ) -> None:
        super().__init__()
        self.factor = check_int("factor", factor)
        k = self.factor
        self.layers: list[int] = []
        if "mlp" in self.branches:
            self.layers = [4 * k, 2 * k, k] if layers is None else _check_layers(layers)
        self.epochs = check_int("epochs", epochs, allow_zero=True)
        self.batch_size = check_int("batch_size", batch_size)
        self.n_negatives = check_int("n_negatives", n_negatives, allow_zero=True)
        check_positive("learning_rate", learning_rate)
        check_positive("regularization", regularization, allow_zero=True)
        self.learning_rate = float(learning_rate)
        self.regularization = float(regularization)
        self.seed = check_int("seed", seed, allow_zero=True)
        self.threads = check_int("threads", threads)
        if optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}"
            )
        self.optimizer = optimizer
        self.precision = check_precision(precision)
        self.device = check_device(device)
        self.weights: dict[str, np.ndarray] = {}
        self._tables: dict[str, np.ndarray] = {}
        #: Optimizer moments restored from a checkpoint, handed to the trainer on resume.
        self._adam_state: dict[str, dict[str, np.ndarray]] = {}
        #: The live trainer while fitting (its optimizer state goes into checkpoints).
        self._trainer: Trainer | None = None

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"factor": self.factor}
        if "mlp" in self.branches:
            cfg["layers"] = list(self.layers)
        cfg.update(
            epochs=self.epochs,
            batch_size=self.batch_size,
            n_negatives=self.n_negatives,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            seed=self.seed,
            threads=self.threads,
            optimizer=self.optimizer,
            precision=self.precision,
            device=self.device,
        )
        return cfg

    # ------------------------------------------------------------------ parameters
    def _shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every weight array, for this model's config and data sizes."""
        nu, ni = self.n_users, self.n_items
        shapes: dict[str, tuple[int, ...]] = {}
        out_width = 0
        if "gmf" in self.branches:
            shapes["gmf.user_embedding"] = (nu, self.factor)
            shapes["gmf.item_embedding"] = (ni, self.factor)
            out_width += self.factor
        if "mlp" in self.branches:
            emb = self.layers[0] // 2
            shapes["mlp.user_embedding"] = (nu, emb)
            shapes["mlp.item_embedding"] = (ni, emb)
            fan_in = 2 * emb
            for layer, width in enumerate(self.layers):
                shapes[f"mlp.{layer}.weight"] = (width, fan_in)
                shapes[f"mlp.{layer}.bias"] = (width,)
                fan_in = width
            out_width += self.layers[-1]
        shapes["output.weight"] = (1, out_width)
        shapes["output.bias"] = (1,)
        return shapes

    def _initial_weights(self) -> dict[str, np.ndarray]:
        """Random initial weights with the reference code's Keras initialisers."""
        r = rng(self.seed, f"{self.name}_init")
        out = {}
        for name, shape in self._shapes().items():
            if name.endswith("embedding"):
                w = r.normal(0.0, 0.01, size=shape)
            elif name.endswith("bias"):
                w = np.zeros(shape)
            else:
                limit = (
                    np.sqrt(3.0 / shape[1])
                    if name == "output.weight"  # LeCun uniform
                    else np.sqrt(6.0 / (shape[0] + shape[1]))
                )  # Glorot uniform
                w = r.uniform(-limit, limit, size=shape)
            out[name] = w.astype(np.float32)
        return out

    def _set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self._tables = {}

    # ------------------------------------------------------------------ training
    def _optimizer_name(self) -> str:
        """The optimizer: "adam", or "sgd" for NeuMF with pretraining."""
        return "adam"

    def _start_weights(self, train: Interactions) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Initial weights and extra ``fit_info`` entries for a fresh fit on ``train``."""
        return self._initial_weights(), {}

    def _fit(self, train: Interactions, on_epoch: EpochCallback | None) -> None:
        torch = import_torch()
        device = resolve_device(self.device)
        if self.precision == "bf16":
            warn_slow_bf16(device)
        if self.epochs_done == 0:
            weights, info = self._start_weights(train)
            self._set_weights(weights)
            self._adam_state = {}
            self.fit_info = {"optimizer": self._optimizer_name(), "epochs": 0, **info}
        self.fit_info["device"] = device
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        # Flush subnormal floats to zero while training. L2 coupled into Adam drives the weights
        # of dead ReLU units (and a collapsed GMF's) and their Adam moments into the subnormal
        # range, where x86 arithmetic is tens of times slower: an ml-1m MLP epoch took 108 s
        # instead of 9 s (benchmarks/subnormal_epoch.py). Values under 1.2e-38 change no score.
        torch.set_flush_denormal(True)
        try:
            cfg = StepConfig(
                optimizer=self.optimizer,
                sgd=self._optimizer_name() == "sgd",
                learning_rate=self.learning_rate,
                regularization=self.regularization,
                batch_size=self.batch_size,
                n_hidden=len(self.layers),
                precision=self.precision,
            )
            self._trainer = Trainer(torch, self.weights, cfg, device, self._adam_state)
            self._adam_state = {}
            self._train(train, on_epoch)
        finally:
            torch.set_flush_denormal(False)
            torch.set_num_threads(previous_threads)
            self._trainer = None

    def _train(self, train: Interactions, on_epoch: EpochCallback | None) -> None:
        """Epochs ``epochs_done + 1 .. epochs`` (a resumed fit continues where it stopped)."""
        assert self._trainer is not None
        n_pos = len(train)
        n_ex = n_pos * (1 + self.n_negatives)
        pos_users = train.user_index.astype(np.int64)
        pos_items = train.item_index.astype(np.int64)
        while self.epochs_done < self.epochs:
            epoch = self.epochs_done + 1
            negatives = training_negatives(
                train, self.n_negatives, rng(self.seed, f"{self.name}_negatives", epoch)
            )
            order = rng(self.seed, f"{self.name}_shuffle", epoch).permutation(n_ex)
            users = np.concatenate([pos_users, np.repeat(pos_users, self.n_negatives)])[order]
            items = np.concatenate([pos_items, negatives])[order]
            labels = (order < n_pos).astype(np.float32)
            mean_loss = self._trainer.epoch(users, items, labels)
            self._tables = {}
            if not np.isfinite(mean_loss):
                raise ConfigError(
                    f"{self.name}: training diverged (loss {mean_loss} in epoch "
                    f"{epoch}); lower learning_rate"
                )
            self.epochs_done = epoch
            self.fit_info.update(epochs=epoch, loss=mean_loss, train_examples=epoch * n_ex)
            if on_epoch is not None:
                on_epoch(epoch, self)

    def _train_logits(self, user_indices: npt.ArrayLike, item_indices: npt.ArrayLike) -> np.ndarray:
        """Logits of the training graph (torch) at the current weights, for checking."""
        torch = import_torch()
        self._check_fitted()
        w = {name: torch.from_numpy(a) for name, a in self.weights.items()}
        u = torch.from_numpy(np.asarray(user_indices, dtype=np.int64))
        i = torch.from_numpy(np.asarray(item_indices, dtype=np.int64))
        with torch.no_grad():
            return _forward(torch, w, u, i, len(self.layers)).numpy()

    # ------------------------------------------------------------------ scoring
    def _score_tables(self) -> dict[str, np.ndarray]:
        """Per-user and per-item tables derived once from the weights (see the module doc)."""
        if not self._tables:
            w, t = self.weights, {}
            w_out = w["output.weight"][0]
            k = 0
            if "gmf" in self.branches:
                k = self.factor
                t["gmf_user"] = w["gmf.user_embedding"]
                t["gmf_item"] = w["gmf.item_embedding"] * w_out[:k]
            if "mlp" in self.branches:
                emb, w1 = self.layers[0] // 2, w["mlp.0.weight"]
                t["mlp_user"] = w["mlp.user_embedding"] @ w1[:, :emb].T
                t["mlp_item"] = w["mlp.item_embedding"] @ w1[:, emb:].T + w["mlp.0.bias"]
                t["mlp_out"] = w_out[k:]
            self._tables = t
        return self._tables

    def _tower(self, h: np.ndarray, t: dict[str, np.ndarray]) -> np.ndarray:
        """MLP logits part from first-layer pre-activations ``h`` of shape (n, layers[0])."""
        np.maximum(h, 0.0, out=h)
        for layer in range(1, len(self.layers)):
            h = h @ self.weights[f"mlp.{layer}.weight"].T
            h += self.weights[f"mlp.{layer}.bias"]
            np.maximum(h, 0.0, out=h)
        return h @ t["mlp_out"]

    def score(self, user_indices: npt.ArrayLike, item_indices: npt.ArrayLike) -> np.ndarray:
        """Logits of (user, item) index pairs: float32 array of shape (n,)."""
        u, i = self._pairs(user_indices, item_indices)
        t = self._score_tables()
        out = np.full(len(u), self.weights["output.bias"][0], dtype=np.float32)
        per = max(1, SCORE_BUDGET // max(self.layers[:1] + [self.factor]))
        for s in range(0, len(u), per):
            uu, ii = u[s : s + per], i[s : s + per]
            if "gmf_user" in t:
                out[s : s + per] += np.einsum("ij,ij->i", t["gmf_user"][uu], t["gmf_item"][ii])
            if "mlp_user" in t:
                out[s : s + per] += self._tower(t["mlp_user"][uu] + t["mlp_item"][ii], t)
        return out

    def score_all(self, user_indices: npt.ArrayLike, batch_size: int | None = None) -> np.ndarray:
        """Logits of every item for each user: float32 of shape (len(users), n_items).

        Users, and for a catalog too large for one user's pass also items, are processed in
        blocks whose intermediate arrays hold at most ``batch_size`` float32 elements (default
        :data:`SCORE_BUDGET`), so memory stays bounded for any catalog size.
        """
        self._check_fitted()
        users = np.asarray(user_indices, dtype=np.int64)
        t = self._score_tables()
        return self._score_user_tables(
            t["gmf_user"][users] if "gmf_user" in t else None,
            t["mlp_user"][users] if "mlp_user" in t else None,
            batch_size,
        )

    def _score_user_tables(
        self,
        gmf_user: np.ndarray | None,
        mlp_user: np.ndarray | None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """:meth:`score_all` from the users' rows of the score tables (see the module doc).

        The MLP tower runs over tiles of (users x items). With ``threads`` > 1 the tiles'
        activations fit in a core's L2 cache and the tiles are shared among that many threads,
        each calling a single-threaded BLAS: on Gowalla's catalog and 2 cores, MLP k=32 and
        NeuMF k=21 score 1.6-2.2x faster than one thread over ``batch_size`` blocks with BLAS's
        own threads (still the path for ``threads`` = 1), whose products are too thin to split
        well (``benchmarks/gowalla_eval.py --ncf-users``). Results agree with that path to
        float32 rounding.
        """
        t = self._score_tables()
        n = len(gmf_user if gmf_user is not None else mlp_user)  # type: ignore[arg-type]
        out = np.empty((n, self.n_items), dtype=np.float32)
        out[:] = self.weights["output.bias"][0]
        budget = batch_size or SCORE_BUDGET
        if gmf_user is not None:
            per = max(1, budget // self.n_items)
            for s in range(0, n, per):
                out[s : s + per] += gmf_user[s : s + per] @ t["gmf_item"].T
        if mlp_user is None:
            return out
        workers = min(self.threads, max(1, budget // _TILE))
        width = self.layers[0]
        tile = max(1, (budget if workers == 1 else min(_TILE, budget // workers)) // width)
        users_per = max(1, tile // self.n_items)
        items_per = min(self.n_items, tile)
        tiles = [(s, j) for s in range(0, n, users_per) for j in range(0, self.n_items, items_per)]

        def run(part: Sequence[tuple[int, int]]) -> None:
            for s, j in part:
                mu, items = mlp_user[s : s + users_per], t["mlp_item"][j : j + items_per]
                h = (mu[:, None, :] + items[None, :, :]).reshape(-1, width)
                scores = self._tower(h, t).reshape(len(mu), len(items))
                out[s : s + len(mu), j : j + len(items)] += scores

        if workers == 1 or len(tiles) == 1:
            run(tiles)
            return out
        with single_threaded_blas(), ThreadPoolExecutor(workers) as pool:
            for done in [pool.submit(run, tiles[w::workers]) for w in range(workers)]:
                done.result()
        return out

    @property
    def size(self) -> int:
        """Numbers per user (or item) vector: the GMF embedding plus the MLP embedding."""
        return sum(self._user_widths())

    # ------------------------------------------------------------------ fold-in
    def _user_widths(self) -> tuple[int, int]:
        """Widths of the GMF and MLP user embeddings (0 for a missing branch)."""
        k = self.factor if "gmf" in self.branches else 0
        emb = self.layers[0] // 2 if "mlp" in self.branches else 0
        return k, emb

    def fold_in(self, item_lists: Sequence[npt.ArrayLike], steps: int = 50) -> np.ndarray:
        """Rows ``[p^G_u ; p^M_u]``: fresh user embeddings fitted with the network fixed.

        Each is the MAP estimate under a Gaussian prior fitted to the trained users' embeddings
        (their mean and covariance), found by at most ``steps`` L-BFGS iterations (PyTorch,
        strong-Wolfe line search) from that mean, on the expected training loss: the user's
        items as positives and every other item as a negative weighted by
        ``n_negatives |I_u| / (n_items - |I_u|)`` (the expectation of the uniform negative
        draws), plus ``regularization / 2`` times the user's example count times |p|^2. GMF's
        objective is convex in its user vector; the MLP's is not, so MLP and NeuMF rows are a
        local optimum. Measured quality: docs/fold-in.md.
        """
        lists = self._fold_in_items(item_lists)
        steps = check_int("steps", steps)
        torch = import_torch()
        k, emb = self._user_widths()
        t = self._score_tables()
        trained = np.hstack(
            [self.weights[f"{b}.user_embedding"] for b in ("gmf", "mlp") if b in self.branches]
        ).astype(np.float64)
        start = trained.mean(axis=0)
        # The trained users' spread as a Gaussian prior: NCF trains without L2, and the bare
        # optimum of one user's loss overfits its few items (docs/fold-in.md).
        cov = np.cov(trained, rowvar=False) + 1e-6 * np.eye(len(start))
        prior = torch.from_numpy(np.linalg.inv(cov).astype(np.float32))
        gmf_item = torch.from_numpy(t["gmf_item"]) if k else None
        mlp_item = torch.from_numpy(t["mlp_item"]) if emb else None
        w1u = (
            torch.from_numpy(np.ascontiguousarray(self.weights["mlp.0.weight"][:, :emb]))
            if emb
            else None
        )
        tower = [
            (
                torch.from_numpy(self.weights[f"mlp.{layer}.weight"]),
                torch.from_numpy(self.weights[f"mlp.{layer}.bias"]),
            )
            for layer in range(1, len(self.layers))
        ]
        mlp_out = torch.from_numpy(t["mlp_out"]) if emb else None
        bias = float(self.weights["output.bias"][0])
        F = torch.nn.functional

        def logits(x: Any) -> Any:
            s = torch.full((self.n_items,), bias)
            if gmf_item is not None:
                s = s + gmf_item @ x[:k]
            if mlp_item is not None and mlp_out is not None and w1u is not None:
                h = torch.relu(mlp_item + w1u @ x[k:])
                for weight, b in tower:
                    h = torch.relu(F.linear(h, weight, b))
                s = s + h @ mlp_out
            return s

        out = np.empty((len(lists), k + emb), np.float32)
        for r, items in enumerate(lists):
            n_p = len(items)
            out[r] = _lbfgs_fold_in(
                torch,
                logits,
                start.astype(np.float32),
                prior,
                self.n_items,
                items,
                self.n_negatives * n_p / max(1, self.n_items - n_p),
                self.regularization * (self.n_negatives + 1) * n_p,
                steps,
            )
        return out

    def score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Scores of every item for rows made by :meth:`fold_in`."""
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.float32)
        k, emb = self._user_widths()
        mlp_user = None
        if emb:
            mlp_user = rows[:, k:] @ self.weights["mlp.0.weight"][:, :emb].T
        return self._score_user_tables(rows[:, :k] if k else None, mlp_user)

    # ------------------------------------------------------------------ artifacts
    def _arrays(self) -> dict[str, np.ndarray]:
        """The weights; mid-fit (a checkpoint) also Adam's moments, so a resume is exact."""
        out = dict(self.weights)
        if self._trainer is not None and self.epochs_done < self.epochs:
            out.update(self._trainer.state_arrays())
        return out

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        shapes = self._shapes()
        state: dict[str, dict[str, np.ndarray]] = {}
        for key, value in arrays.items():
            if key in shapes:
                continue
            prefix, _, moment = key.rpartition(".")
            name = prefix.removeprefix("adam.")
            if (
                not prefix.startswith("adam.")
                or name not in shapes
                or moment not in ("exp_avg", "exp_avg_sq", "step")
            ):
                raise ValueError(f"unexpected array {key!r}")
            if value.shape != (() if moment == "step" else shapes[name]):
                raise ValueError(f"{key} has shape {value.shape}")
            state.setdefault(name, {})[moment] = value
        missing = sorted(set(shapes) - set(arrays))
        if missing:
            raise ValueError(f"missing arrays {missing}")
        for name, shape in shapes.items():
            if arrays[name].shape != shape:
                raise ValueError(f"{name} has shape {arrays[name].shape}, expected {shape}")
        self._set_weights({name: np.array(arrays[name], dtype=np.float32) for name in shapes})
        self._adam_state = state


@register
class GMF(_NCFModel):
    """Generalized Matrix Factorization, ``w . (p_u * q_i) + b`` (see the module doc).

    Parameters
    ----------
    factor : int
        Predictive factor k: the embedding width.
    epochs : int
    batch_size : int
        Examples per mini-batch.
    n_negatives : int
        Negatives per training pair, drawn among the user's non-training items each epoch.
    learning_rate : float
        Adam step size.
    regularization : float
        L2 weight on embeddings and weight matrices (biases excluded).
    seed : int
    threads : int
        Torch CPU threads while training (bit-repeatable for a fixed count).
    optimizer : {"adam", "lazy_adam"}
        ``adam``: dense Adam, the paper's Keras semantics (the default, for reproductions).
        ``lazy_adam``: Adam on the embedding rows each batch touches (dense layers as
        ``adam``); several times faster, see docs/models/ncf.md for its quality.
    precision : {"fp32", "bf16"}
        ``bf16`` runs the MLP tower's matrix products in bfloat16 (master weights, optimizer
        and loss in float32); a speed-up where the CPU has AVX512-BF16 or AMX, and on GPUs.
    device : {"cpu", "cuda", "auto"}
        Where training runs (``auto``: CUDA when torch sees a GPU). Scoring is NumPy.

    References
    ----------
    He et al., "Neural Collaborative Filtering", WWW 2017, section 3.3, eq. 9.
    """

    name = "gmf"
    size_param = "factor"
    branches = ("gmf",)

    def __init__(
        self,
        factor: int = 8,
        epochs: int = 20,
        batch_size: int = 256,
        n_negatives: int = 4,
        learning_rate: float = 0.001,
        regularization: float = 0.0,
        seed: int = 0,
        threads: int = 1,
        optimizer: str = "adam",
        precision: str = "fp32",
        device: str = "cpu",
    ) -> None:
        super().__init__(
            factor,
            None,
            epochs,
            batch_size,
            n_negatives,
            learning_rate,
            regularization,
            seed,
            threads,
            optimizer,
            precision,
            device,
        )


@register
class MLP(_NCFModel):
    """Multi-layer perceptron over concatenated embeddings (He et al. 2017, eq. 10).

    Parameters
    ----------
    factor : int
        Predictive factor k; the tower is [4k, 2k, k] unless ``layers`` is given.
    layers : list of int, optional
        Hidden layer widths (``layers[0]`` even); the embeddings have ``layers[0] / 2`` units
        each (the first layer is square) and the predictive factor becomes ``layers[-1]``
        (``factor`` is then ignored).
    epochs, batch_size, n_negatives, learning_rate, regularization, seed, threads, optimizer,
    precision, device
        As for :class:`GMF`.

    References
    ----------
    He et al., "Neural Collaborative Filtering", WWW 2017, section 3.3, eq. 10.
    """

    name = "mlp"
    size_param = "factor"
    size_multiplier = 2
    branches = ("mlp",)

    def __init__(
        self,
        factor: int = 8,
        layers: list[int] | None = None,
        epochs: int = 20,
        batch_size: int = 256,
        n_negatives: int = 4,
        learning_rate: float = 0.001,
        regularization: float = 0.0,
        seed: int = 0,
        threads: int = 1,
        optimizer: str = "adam",
        precision: str = "fp32",
        device: str = "cpu",
    ) -> None:
        if layers is not None:
            factor = _check_layers(layers)[-1]
        super().__init__(
            factor,
            layers,
            epochs,
            batch_size,
            n_negatives,
            learning_rate,
            regularization,
            seed,
            threads,
            optimizer,
            precision,
            device,
        )


@register
class NeuMF(_NCFModel):
    """Neural Matrix Factorization: GMF and MLP branches fused in the last layer (eq. 11-12).

    Parameters
    ----------
    factor : int
        GMF embedding width; also sets the default tower [4k, 2k, k].
    layers : list of int, optional
        Hidden widths of the MLP branch (embeddings of ``layers[0] / 2`` units each).
    pretrain : bool
        Start from a fitted GMF and MLP given to :meth:`set_pretrained` and train with plain
        SGD at ``learning_rate``; otherwise random initialisation and Adam.
        :meth:`set_pretrained` sets it.
    epochs, batch_size, n_negatives, learning_rate, regularization, seed, threads, optimizer,
    precision, device
        As for :class:`GMF`.

    References
    ----------
    He et al., "Neural Collaborative Filtering", WWW 2017, section 3.4, eq. 11-12.
    """

    name = "neumf"
    size_param = "factor"
    size_multiplier = 3
    branches = ("gmf", "mlp")

    def __init__(
        self,
        factor: int = 8,
        layers: list[int] | None = None,
        epochs: int = 20,
        batch_size: int = 256,
        n_negatives: int = 4,
        learning_rate: float = 0.001,
        regularization: float = 0.0,
        pretrain: bool = False,
        seed: int = 0,
        threads: int = 1,
        optimizer: str = "adam",
        precision: str = "fp32",
        device: str = "cpu",
    ) -> None:
        super().__init__(
            factor,
            layers,
            epochs,
            batch_size,
            n_negatives,
            learning_rate,
            regularization,
            seed,
            threads,
            optimizer,
            precision,
            device,
        )
        self.pretrain = bool(pretrain)
        self._pretrained: tuple[GMF, MLP] | None = None

    def config(self) -> dict[str, Any]:
        return {**super().config(), "pretrain": self.pretrain}

    def set_pretrained(self, gmf: Model, mlp: Model) -> None:
        """Initialise the next :meth:`fit` from a fitted GMF and MLP (He et al. 2017, 3.4.1).

        The GMF must have this model's ``factor`` and the MLP its ``layers``; both must be
        fitted on the same training data as each other (and as the data given to ``fit``).
        """
        if not isinstance(gmf, GMF) or not isinstance(mlp, MLP):
            raise ConfigError(
                f"set_pretrained takes a GMF and an MLP, got {gmf.name!r} and {mlp.name!r}"
            )
        if gmf.n_items == 0 or mlp.n_items == 0:
            raise ConfigError("set_pretrained needs fitted GMF and MLP models")
        if gmf.factor != self.factor:
            raise ConfigError(
                f"pretrained GMF has factor {gmf.factor}, NeuMF has "
                f"{self.factor}; pass factor={gmf.factor} (--factor)"
            )
        if mlp.layers != self.layers:
            raise ConfigError(
                f"pretrained MLP has layers {mlp.layers}, NeuMF has {self.layers};"
                f" pass layers={mlp.layers} (--layers)"
            )
        if (gmf.n_users, gmf.n_items) != (
            mlp.n_users,
            mlp.n_items,
        ) or gmf.train_fingerprint != mlp.train_fingerprint:
            raise ConfigError("the pretrained GMF and MLP were fitted on different data")
        self._pretrained = (gmf, mlp)
        self.pretrain = True

    @property
    def pretrained_models(self) -> tuple[GMF, MLP] | None:
        """The GMF and MLP given to :meth:`set_pretrained` (None before)."""
        return self._pretrained

    def _optimizer_name(self) -> str:
        return "sgd" if self.pretrain else "adam"

    def _start_weights(self, train: Interactions) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if not self.pretrain:
            return super()._start_weights(train)
        if self._pretrained is None:
            raise ConfigError(
                "NeuMF(pretrain=True) needs set_pretrained(gmf, mlp) before fit "
                "(CLI: --pretrain-from GMF_DIR,MLP_DIR)"
            )
        gmf, mlp = self._pretrained
        if (gmf.n_users, gmf.n_items) != (train.n_users, train.n_items) or (
            gmf.train_fingerprint not in (None, self.train_fingerprint)
        ):
            raise ConfigError(
                "the pretrained GMF and MLP were fitted on other training data than this fit's"
            )
        a = PRETRAIN_ALPHA
        weights = {
            name: np.array(w, dtype=np.float32)
            for src in (gmf, mlp)
            for name, w in src.weights.items()
            if not name.startswith("output.")
        }
        weights["output.weight"] = np.concatenate(
            [a * gmf.weights["output.weight"], (1 - a) * mlp.weights["output.weight"]], axis=1
        ).astype(np.float32)
        weights["output.bias"] = (
            a * gmf.weights["output.bias"] + (1 - a) * mlp.weights["output.bias"]
        ).astype(np.float32)
        info = {
            "pretrained_from": {
                m.name: {
                    "config": m.config(),
                    "fingerprint": m.train_fingerprint,
                    "loss": m.fit_info.get("loss"),
                }
                for m in (gmf, mlp)
            }
        }
        return weights, info

"""MatrixFactorization: the dot-product model of Rendle et al. (2020), trained by SGD.

Model
    score(u, i) = b + b_u + b_i + <p_u, q_i>.
Loss
    Logistic loss on labelled pairs: each training positive (label 1) plus ``n_negatives``
    items drawn uniformly at random from the whole catalog (label 0), drawn afresh every epoch.
    As in the reference implementation, a drawn "negative" may happen to be a positive.
Optimizer
    Plain per-example SGD over the shuffled examples of an epoch. With g = y - sigmoid(score),
    each parameter theta touched by the example moves by lr * (g * d score/d theta - reg * theta),
    so L2 applies at each step to the touched parameters only (the global bias included).
Initialisation
    p_u, q_i ~ N(0, stddev^2); biases 0.

References
----------
S. Rendle, W. Krichene, L. Zhang, J. Anderson. "Neural Collaborative Filtering vs. Matrix
Factorization Revisited". RecSys 2020, section 3 and the google-research
``dot_vs_learned_similarity`` reference code (``mf_simple.py``).

Randomness: epoch ``e`` draws its shuffle and negatives from a stream derived from
``(seed, e)``, so a resumed run repeats an uninterrupted one. With ``threads=1`` training is
bit-reproducible; with more threads the example stream is split into per-thread chunks updated
lock-free (Hogwild!, Recht et al. 2011), which is fast but lets float rounding depend on thread
timing.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from dotrec.data.interactions import Interactions
from dotrec.errors import ConfigError
from dotrec.models.base import DotProductModel, EpochCallback, check_positive, register
from dotrec.random import int_seed, rng


@numba.njit(inline="always")
def _next(state: np.ndarray, k: int) -> np.uint64:
    # splitmix64: a tiny, fast, well-mixed generator with per-thread state; numba's own
    # np.random cannot be seeded per thread inside a prange loop.
    state[k] += np.uint64(0x9E3779B97F4A7C15)
    z = state[k]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True)
def _shuffle(order: np.ndarray, seed: np.uint64) -> None:
    state = np.empty(1, np.uint64)
    state[0] = seed
    for i in range(len(order) - 1, 0, -1):
        j = _next(state, 0) % np.uint64(i + 1)
        tmp = order[i]
        order[i] = order[j]
        order[j] = tmp


# fastmath lets LLVM vectorize the dot-product reduction; the result is still deterministic
# for a given build and thread count.
@numba.njit(parallel=True, cache=True, fastmath=True)
def _sgd_epoch(P, Q, bu, bi, gb, users, items, order, n_neg, n_items, lr, reg, seeds,
               n_chunks):  # pragma: no cover - compiled
    n = len(order)
    per = (n + n_chunks - 1) // n_chunks
    d = P.shape[1]
    loss = np.zeros(n_chunks)
    for c in numba.prange(n_chunks):
        state = np.empty(1, np.uint64)
        state[0] = seeds[c]
        start = c * per
        stop = min(n, start + per)
        for e in range(start, stop):
            ex = order[e]
            p = ex // (n_neg + 1)
            u = users[p]
            if ex - p * (n_neg + 1) == 0:
                i = items[p]
                y = 1.0
            else:
                i = np.int64(_next(state, 0) % np.uint64(n_items))
                y = 0.0
            s = gb[0] + bu[u] + bi[i]
            for f in range(d):
                s += P[u, f] * Q[i, f]
            if s > 0:
                z = np.exp(-s)
                sig = 1.0 / (1.0 + z)
                loss[c] += np.log1p(z) + (1.0 - y) * s
            else:
                z = np.exp(s)
                sig = z / (1.0 + z)
                loss[c] += np.log1p(z) - y * s
            g = y - sig
            for f in range(d):
                pu = P[u, f]
                qi = Q[i, f]
                P[u, f] = pu + lr * (g * qi - reg * pu)
                Q[i, f] = qi + lr * (g * pu - reg * qi)
            bu[u] += lr * (g - reg * bu[u])
            bi[i] += lr * (g - reg * bi[i])
            gb[0] += lr * (g - reg * gb[0])
    return loss.sum()


@register
class MatrixFactorization(DotProductModel):
    """Dot-product matrix factorization with biases, logistic loss and SGD (see module doc).

    Parameters
    ----------
    embedding_dim : int
        Width of ``user_factors`` / ``item_factors``.
    epochs : int
    learning_rate : float
    regularization : float
        L2 weight applied at each SGD step to the parameters the step touches.
    n_negatives : int
        Uniform negatives per positive, resampled each epoch.
    stddev : float
        Standard deviation of the normal initialisation of the factors.
    seed : int
    threads : int
        Worker threads for SGD (1 = bit-reproducible; more = Hogwild!).
    """

    name = "mf"

    def __init__(self, embedding_dim: int = 64, epochs: int = 20, learning_rate: float = 0.002,
                 regularization: float = 0.005, n_negatives: int = 8, stddev: float = 0.1,
                 seed: int = 0, threads: int = 1) -> None:
        super().__init__()
        check_positive("embedding_dim", embedding_dim)
        check_positive("epochs", epochs, allow_zero=True)
        check_positive("learning_rate", learning_rate)
        check_positive("regularization", regularization, allow_zero=True)
        check_positive("n_negatives", n_negatives, allow_zero=True)
        check_positive("stddev", stddev, allow_zero=True)
        check_positive("threads", threads)
        if int(embedding_dim) != embedding_dim or int(epochs) != epochs:
            raise ConfigError("embedding_dim and epochs must be integers")
        self.embedding_dim = int(embedding_dim)
        self.epochs = int(epochs)
        self.learning_rate = float(learning_rate)
        self.regularization = float(regularization)
        self.n_negatives = int(n_negatives)
        self.stddev = float(stddev)
        self.seed = int(seed)
        self.threads = int(threads)
        self.last_loss = float("nan")

    def config(self) -> dict[str, Any]:
        return {"embedding_dim": self.embedding_dim, "epochs": self.epochs,
                "learning_rate": self.learning_rate, "regularization": self.regularization,
                "n_negatives": self.n_negatives, "stddev": self.stddev, "seed": self.seed,
                "threads": self.threads}

    def initialize(self, n_users: int, n_items: int) -> None:
        """Draw the initial factors (N(0, stddev^2)) and zero biases."""
        r = rng(self.seed, "mf_init")
        d = self.embedding_dim
        self.user_factors = (r.standard_normal((n_users, d)) * self.stddev).astype(np.float32)
        self.item_factors = (r.standard_normal((n_items, d)) * self.stddev).astype(np.float32)
        self.user_bias = np.zeros(n_users, np.float32)
        self.item_bias = np.zeros(n_items, np.float32)
        self.global_bias = np.float32(0.0)
        self.epochs_done = 0

    def _fit(self, train: Interactions, on_epoch: EpochCallback | None) -> None:
        if self.epochs_done == 0 or self.user_factors.shape != (train.n_users, self.embedding_dim):
            self.initialize(train.n_users, train.n_items)
        self._train_epochs(train, self.epochs, on_epoch)

    def _train_epochs(self, train: Interactions, until: int,
                      on_epoch: EpochCallback | None) -> None:
        users = train.user_index.astype(np.int32)
        items = train.item_index.astype(np.int32)
        idx_type = np.int32 if len(users) * (self.n_negatives + 1) < 2**31 else np.int64
        n_ex = len(users) * (self.n_negatives + 1)
        gb = np.array([self.global_bias], dtype=np.float32)
        numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
        while self.epochs_done < until:
            epoch = self.epochs_done + 1
            order = np.arange(n_ex, dtype=idx_type)
            _shuffle(order, np.uint64(int_seed(self.seed, "mf_shuffle", epoch)))
            seeds = np.array([int_seed(self.seed, "mf_negatives", epoch, c)
                              for c in range(self.threads)], dtype=np.uint64)
            loss = _sgd_epoch(self.user_factors, self.item_factors, self.user_bias,
                              self.item_bias, gb, users, items, order, self.n_negatives,
                              train.n_items, np.float32(self.learning_rate),
                              np.float32(self.regularization), seeds, self.threads)
            self.global_bias = np.float32(gb[0])
            self.epochs_done = epoch
            self.last_loss = float(loss / max(1, n_ex))
            self.fit_info["epochs"] = epoch
            self.fit_info["loss"] = self.last_loss
            if on_epoch is not None:
                on_epoch(epoch, self)

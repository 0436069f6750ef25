"""MatrixFactorization: the dot-product model of Rendle et al. (2020), trained by SGD.

Model
    score(u, i) = b + b_u + b_i + <p_u, q_i>.
Loss
    Logistic loss on labelled pairs: each training positive (label 1) and, per positive,
    ``n_negatives`` negatives (label 0) whose items are drawn uniformly at random from the whole
    catalog, afresh every epoch. As in the reference implementation, a drawn "negative" may
    happen to be a positive.
Optimizer
    Plain per-example SGD over a shuffled stream of the epoch's examples. With
    g = y - sigmoid(score), each parameter theta touched by the example moves by
    lr * (g * d score/d theta - reg * theta), so L2 applies at each step to the touched
    parameters only (the global bias included).
Example stream
    An epoch is a uniformly shuffled stream of ``n_pos * (n_negatives + 1)`` examples: every
    training positive exactly once, in shuffled order, and ``n_pos * n_negatives`` negatives
    drawn inline as the stream is consumed. Which slots of the stream are negatives is a
    uniformly random subset (selection sampling, Knuth's Algorithm S); each negative pairs the
    user of a uniformly drawn training positive with a uniformly drawn item. Every slot thus
    carries the distribution of a slot of the reference's shuffled list (each positive plus
    ``n_negatives`` pairs of its user with random items); the one difference is that a user's
    negatives in an epoch number ``n_negatives`` times its positives on average instead of
    exactly. Only the ``n_pos`` positives are shuffled (and then read in order), not a list of
    all the epoch's examples.
Size accounting
    ``embedding_dim = d`` counts what the paper counts: the reference builds its model with
    ``embedding_dim - 1`` factors, because the item bias is one more coordinate of the item
    vector (its user coordinate is the constant 1). So p_u and q_i have ``d - 1`` columns
    (:attr:`MatrixFactorization.n_factors`), and the index that serves the model holds exactly
    ``d`` numbers per item: ``[q_i, b_i]``.
Initialisation
    p_u, q_i ~ N(0, stddev^2); biases 0.
Fold-in (:meth:`MatrixFactorization.fold_in`)
    A new user's ``(p_u, b_u)`` is fitted to the epoch's expected training loss with the item
    side fixed: ``sum_{i in I_u} softplus(-s_ui) + (n_negatives |I_u| / n_items) sum_j
    softplus(s_uj) + (reg / 2) (n_negatives + 1) |I_u| (|p_u|^2 + b_u^2)`` (the negative term
    is the expectation over uniform draws from the whole catalog, and the L2 term is the
    per-step penalty times the number of steps that touch the user in an epoch). The loss is
    convex, so it is minimised exactly by Newton's method (no draws, no seed).

References
----------
S. Rendle, W. Krichene, L. Zhang, J. Anderson. "Neural Collaborative Filtering vs. Matrix
Factorization Revisited". RecSys 2020, section 3 and the google-research
``dot_vs_learned_similarity`` reference code (``mf_simple.py``).

Randomness and threads: epoch ``e`` draws its shuffle and negatives from streams derived from
``(seed, e)``, so a resumed run repeats an uninterrupted one. With ``threads=1`` training is
bit-reproducible and exactly sequential per-example SGD. With ``T`` threads the shuffled
positives are split into ``T`` chunks, each streamed with its own negatives by one thread,
lock-free on the shared factors and per-user/per-item biases (Hogwild!, Recht et al. 2011):
fast, but float rounding depends on thread timing. The global bias, which every example
updates, is kept per thread during an epoch instead (one shared value would bounce between the
cores' caches on every example) and the copies are averaged after it, weighted by chunk size;
each copy settles within a few thousand steps, so summing their changes would overshoot
``T``-fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from scipy.special import expit

from dotrec._numba import numba_threads
from dotrec.data.interactions import Interactions
from dotrec.errors import ConfigError
from dotrec.models.base import DotProductModel, EpochCallback, register
from dotrec.random import int_seed, rng
from dotrec.validate import check_positive

# The SGD loop is hand-written in numba because no library does this: per-example (Hogwild!)
# SGD with negatives drawn inline (numpy, torch and implicit train in vectorised mini-batches,
# a different optimizer). It keeps all arithmetic in float32, so LLVM vectorises the row loops
# at full SIMD width, per-thread state in locals, and no integer division on the hot path.

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)


@numba.njit(inline="always")
def _mix(z: np.uint64) -> np.uint64:
    # splitmix64's output function. Each thread's generator is a counter stepped by _GOLDEN and
    # kept in a local (numba's own np.random cannot be seeded per thread inside prange).
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(inline="always")
def _below(x: np.uint64, n: int) -> np.int64:
    """The top 32 bits of ``x`` mapped to ``[0, n)``, ``n <= 2**32`` (Lemire's multiply-shift)."""
    return np.int64(((x >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))


@numba.njit(cache=True)
def _shuffle(order: np.ndarray, seed: np.uint64) -> None:
    """Fisher-Yates shuffle of ``order`` (``len(order) <= 2**32``) in place."""
    state = np.uint64(seed)
    for i in range(len(order) - 1, 0, -1):
        state += _GOLDEN
        j = _below(_mix(state), i + 1)
        tmp = order[i]
        order[i] = order[j]
        order[j] = tmp


@numba.njit(inline="always")
def _draw(
    state: np.uint64,
    left: int,
    k: int,
    stop: int,
    pos_users: np.ndarray,
    pos_items: np.ndarray,
    users: np.ndarray,
    next_user: int,
    n_items: int,
) -> tuple[np.uint64, int, Any, Any, np.float32, Any]:
    """The next example of a chunk with ``left`` slots and the positives ``k:stop`` to go.

    The slot is a positive with probability ``(stop - k) / left`` (selection sampling), else a
    negative: ``next_user`` with a uniform item. The following negative's user (the user of a
    uniformly drawn positive) is drawn here already, so that its load from ``users``, a random
    access that misses the cache, overlaps an SGD step instead of stalling one.
    Returns ``(state, k, user, item, label, next_user)``.
    """
    state += _GOLDEN
    x = _mix(state)
    if np.float64(x >> np.uint64(11)) * (2.0**-53) * left < stop - k:
        return state, k + 1, pos_users[k], pos_items[k], _ONE, next_user
    state += _GOLDEN
    x = _mix(state)
    return (
        state,
        k,
        next_user,
        _below(x, n_items),
        _ZERO,
        users[_below(x << np.uint64(32), len(users))],
    )


@numba.njit(inline="always")
def _step(
    pu: np.ndarray,
    qi: np.ndarray,
    bu: np.ndarray,
    bi: np.ndarray,
    u: int,
    i: int,
    gb: np.float32,
    y: np.float32,
    lr: np.float32,
    decay: np.float32,
) -> tuple[np.float32, np.float32, np.float32]:
    """One SGD step on the rows ``pu = P[u]``, ``qi = Q[i]`` and the biases, in float32.

    ``theta + lr * (g * grad - reg * theta)`` is computed as ``decay * theta + lr * g * grad``
    with ``decay = 1 - lr * reg``. Returns ``(score, exp(-|score|), updated global bias)``.
    """
    s = gb + bu[u] + bi[i]
    for f in range(pu.shape[0]):
        s += pu[f] * qi[f]
    z = np.exp(-np.abs(s))
    r = _ONE / (_ONE + z)
    lg = lr * (y - (r if s > _ZERO else z * r))  # lr * g, with sigmoid(s) from z
    for f in range(pu.shape[0]):
        a = pu[f]
        b = qi[f]
        pu[f] = decay * a + lg * b
        qi[f] = decay * b + lg * a
    bu[u] = decay * bu[u] + lg
    bi[i] = decay * bi[i] + lg
    return s, z, decay * gb + lg


# fastmath lets LLVM vectorize the dot-product reduction; the result is still deterministic
# for a given build and thread count.
@numba.njit(parallel=True, cache=True, fastmath=True)
def _sgd_epoch(
    P: np.ndarray,
    Q: np.ndarray,
    bu: np.ndarray,
    bi: np.ndarray,
    gb: np.ndarray,
    users: np.ndarray,
    pos_users: np.ndarray,
    pos_items: np.ndarray,
    n_neg: int,
    n_items: int,
    lr: np.float32,
    reg: np.float32,
    seeds: np.ndarray,
) -> float:  # pragma: no cover - compiled
    """One epoch over the shuffled positives ``pos_users``/``pos_items`` and inline negatives.

    ``users`` holds every training positive's user (negatives' users are drawn from it). Chunk
    ``c`` of the positives runs on one thread from generator seed ``seeds[c]``. Updates the
    parameters in place (``gb[0]`` is the global bias); returns the summed logistic loss.
    """
    n_pos = len(pos_users)
    n_chunks = len(seeds)
    decay = _ONE - lr * reg
    loss = np.zeros(n_chunks)
    gbs = np.zeros(n_chunks)  # chunk c's final global bias, times its share of the positives
    for c in numba.prange(n_chunks):
        state = np.uint64(seeds[c])
        g0 = gb[0]
        # loss = log1p(exp(-|s|)) + max(s, 0) - y * s; the log1p terms are summed as the log of
        # a running product of (1 + exp(-|s|)) <= 2, taken when it nears overflow.
        lin = 0.0
        prod = 1.0
        logs = 0.0
        start = c * n_pos // n_chunks
        stop = (c + 1) * n_pos // n_chunks
        k = start
        m = (stop - start) * (n_neg + 1)
        state += _GOLDEN
        nu = users[_below(_mix(state), len(users))]
        # Software pipeline: example e + 1 is drawn before example e is trained on.
        state, k, u1, i1, y1, nu = _draw(
            state, m, k, stop, pos_users, pos_items, users, nu, n_items
        )
        for e in range(m):
            u, i, y = u1, i1, y1
            if e + 1 < m:
                state, k, u1, i1, y1, nu = _draw(
                    state, m - e - 1, k, stop, pos_users, pos_items, users, nu, n_items
                )
            s, z, g0 = _step(P[u], Q[i], bu, bi, u, i, g0, y, lr, decay)
            lin += float(max(s, _ZERO) - y * s)
            prod *= float(1.0 + z)
            if prod > 1e300:
                logs += np.log(prod)
                prod = 1.0
        loss[c] = lin + logs + np.log(prod)
        gbs[c] = g0 * ((stop - start) / n_pos)
    gb[0] = gbs.sum()
    return loss.sum()


@register
class MatrixFactorization(DotProductModel):
    """Dot-product matrix factorization with biases, logistic loss and SGD (see module doc).

    Parameters
    ----------
    embedding_dim : int
        Parameters per item vector as the paper counts them, the item bias included:
        ``user_factors`` / ``item_factors`` have ``embedding_dim - 1`` columns (the reference's
        accounting; see the module doc).
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
    size_param = "embedding_dim"

    def __init__(
        self,
        embedding_dim: int = 64,
        epochs: int = 20,
        learning_rate: float = 0.002,
        regularization: float = 0.005,
        n_negatives: int = 8,
        stddev: float = 0.1,
        seed: int = 0,
        threads: int = 1,
    ) -> None:
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
        self.n_factors = self.embedding_dim - 1
        self.epochs = int(epochs)
        self.learning_rate = float(learning_rate)
        self.regularization = float(regularization)
        self.n_negatives = int(n_negatives)
        self.stddev = float(stddev)
        self.seed = int(seed)
        self.threads = int(threads)
        self.last_loss = float("nan")

    def config(self) -> dict[str, Any]:
        return {
            "embedding_dim": self.embedding_dim,
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "regularization": self.regularization,
            "n_negatives": self.n_negatives,
            "stddev": self.stddev,
            "seed": self.seed,
            "threads": self.threads,
        }

    def initialize(self, n_users: int, n_items: int) -> None:
        """Draw the initial factors (N(0, stddev^2)) and zero biases."""
        r = rng(self.seed, "mf_init")
        d = self.n_factors
        self.user_factors = (r.standard_normal((n_users, d)) * self.stddev).astype(np.float32)
        self.item_factors = (r.standard_normal((n_items, d)) * self.stddev).astype(np.float32)
        self.user_bias = np.zeros(n_users, np.float32)
        self.item_bias = np.zeros(n_items, np.float32)
        self.global_bias = np.float32(0.0)
        self.epochs_done = 0

    def fold_in(self, item_lists: Sequence[npt.ArrayLike]) -> np.ndarray:
        """Rows ``[p_u, b_u]`` minimising the user's expected training loss (module doc)."""
        lists = self._fold_in_items(item_lists)
        if self.n_negatives == 0 and self.regularization == 0:
            raise ConfigError(
                "mf: fold-in needs n_negatives > 0 or regularization > 0 (otherwise the "
                "user's loss has no minimum)"
            )
        f = self.n_factors
        # The user's side of a score is <[p_u, b_u], [q_i, 1]> + b_i + b.
        Q = np.hstack([self.item_factors, np.ones((self.n_items, 1), np.float32)])
        Q = Q.astype(np.float64)
        c = self.item_bias.astype(np.float64) + float(self.global_bias)
        out = np.zeros((len(lists), f + 1), np.float32)
        for r, items in enumerate(lists):
            out[r] = _newton_fold_in(
                Q,
                c,
                items,
                self.n_negatives * len(items) / self.n_items,
                self.regularization * (self.n_negatives + 1) * len(items),
            )
        return out

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        super()._restore(arrays)
        if self.user_factors.shape[1] != self.n_factors:
            raise ValueError(
                f"factors have {self.user_factors.shape[1]} columns, but embedding_dim "
                f"{self.embedding_dim} means {self.n_factors} (the bias counts as one; artifacts "
                "written before this accounting must be retrained)"
            )

    def _fit(self, train: Interactions, on_epoch: EpochCallback | None) -> None:
        if self.epochs_done == 0 or self.user_factors.shape != (train.n_users, self.n_factors):
            self.initialize(train.n_users, train.n_items)
        self._train_epochs(train, self.epochs, on_epoch)

    def _train_epochs(
        self, train: Interactions, until: int, on_epoch: EpochCallback | None
    ) -> None:
        users = train.user_index.astype(np.int32)
        items = train.item_index.astype(np.int32)
        if len(users) > 2**32:
            raise ConfigError("mf: at most 2**32 training interactions")
        n_ex = len(users) * (self.n_negatives + 1)
        gb = np.array([self.global_bias], dtype=np.float32)
        numba.set_num_threads(numba_threads(self.threads))
        while self.epochs_done < until:
            epoch = self.epochs_done + 1
            perm = np.arange(len(users), dtype=np.int64)
            _shuffle(perm, np.uint64(int_seed(self.seed, "mf_shuffle", epoch)))
            seeds = np.array(
                [int_seed(self.seed, "mf_negatives", epoch, c) for c in range(self.threads)],
                dtype=np.uint64,
            )
            loss = (
                0.0
                if not len(users)
                else _sgd_epoch(
                    self.user_factors,
                    self.item_factors,
                    self.user_bias,
                    self.item_bias,
                    gb,
                    users,
                    users[perm],
                    items[perm],
                    self.n_negatives,
                    train.n_items,
                    np.float32(self.learning_rate),
                    np.float32(self.regularization),
                    seeds,
                )
            )
            self.global_bias = np.float32(gb[0])
            self.last_loss = float(loss / max(1, n_ex))
            if not (np.isfinite(self.last_loss) and np.isfinite(self.global_bias)):
                raise ConfigError(
                    f"mf: training diverged (loss {self.last_loss} in epoch {epoch}); lower "
                    "learning_rate"
                )
            self.epochs_done = epoch
            self.fit_info["epochs"] = epoch
            self.fit_info["loss"] = self.last_loss
            if on_epoch is not None:
                on_epoch(epoch, self)


def _newton_fold_in(
    Q: np.ndarray, c: np.ndarray, items: np.ndarray, w: float, lam: float
) -> np.ndarray:
    """argmin_x sum_{i in items} softplus(-s_i) + w sum_j softplus(s_j) + lam/2 |x|^2, s = Qx + c.

    Newton's method with a backtracking line search: the loss is smooth and strictly convex
    (lam > 0 or w > 0 with Q of full column rank), so this converges in a few steps.
    """
    Qp = Q[items]

    def loss(x: np.ndarray) -> float:
        s = Q @ x + c
        return float(
            np.logaddexp(0.0, -s[items]).sum()
            + w * np.logaddexp(0.0, s).sum()
            + 0.5 * lam * (x @ x)
        )

    x = np.zeros(Q.shape[1])
    fx = loss(x)
    for _ in range(100):
        sig = expit(Q @ x + c)
        sp = sig[items]
        g = w * (Q.T @ sig) - Qp.T @ (1.0 - sp) + lam * x
        H = (Q.T * (w * sig * (1.0 - sig))) @ Q + (Qp.T * (sp * (1.0 - sp))) @ Qp
        H[np.diag_indices_from(H)] += lam
        step = np.linalg.solve(H, g)
        decrement = float(g @ step)  # Newton decrement squared: the loss's expected drop x2
        if decrement < 1e-12:
            break
        t = 1.0
        while True:
            x_new = x - t * step
            f_new = loss(x_new)
            if f_new <= fx - 0.25 * t * decrement or t < 1e-10:
                break
            t *= 0.5
        x, fx = x_new, f_new
    return x

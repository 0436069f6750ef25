"""IALS: implicit alternating least squares, the dot-product baseline of Rendle et al. (2022).

Model
    score(u, i) = <w_u, h_i>; no biases (the artifact's bias arrays are zeros).
Objective
    L(W, H) = sum_{(u,i) observed} (1 - <w_u, h_i>)^2 + alpha0 * sum_{all (u,i)} <w_u, h_i>^2
              + sum_u lambda_u |w_u|^2 + sum_i lambda_i |h_i|^2,

    with ``alpha0 = unobserved_weight`` and frequency-scaled regularization
    ``lambda_u = regularization * (|I_u| + alpha0 * n_items) ** nu`` for users and
    ``lambda_i = regularization * (|U_i| + alpha0 * n_users) ** nu`` for items
    (``nu = regularization_exponent``; ``nu = 1`` is the scaling of the reference code).
    Every training pair counts once with weight 1; ratings are ignored.
Optimizer
    Alternating minimisation, users first in each epoch. With H fixed, the user side splits into
    one least-squares problem per user, solved with the Gramian trick (G = alpha0 * H^T H is
    computed once per half-step):

        (H_u^T H_u + G + lambda_u I) w_u = H_u^T 1,

    where H_u holds the rows of the user's items; the item side is symmetric. Solvers:

    ``"cg"`` (default)
        ``cg_steps`` conjugate-gradient steps per row, warm-started from the current factors.
        Cost per half-step is O(cg_steps * (nnz * d + rows * d^2)), so an epoch costs about
        what one of ``implicit``'s does. Each CG step lowers the row's quadratic, so the
        objective does not rise either, but a half-step stops short of the minimiser; with
        warm starts the ranking quality matches the exact solver's (``docs/models/ials.md``).
    ``"cholesky"``
        The exact solve: each row's system is built (one BLAS GEMM, O(|I_u| d^2)) and solved
        by Cholesky (O(d^3)). Every half-step is then the exact minimiser, so the objective
        never rises. 3 to 20 times slower per epoch than ``"cg"`` (d = 64 to 512 on ml-1m);
        use it for small d, for reference results, or when each half-step must be exact.

    Rows with no training pair have the exact solution 0 and are set to 0 by both solvers.
Initialisation
    w_u, h_i ~ N(0, (stddev / sqrt(embedding_dim))^2), as in the reference code.
Fold-in (:meth:`IALS.fold_in`)
    A new user's ``w_u`` is the exact solution of its row system above with the trained item
    factors and the training regularization ``lambda_u``: what one more user half-step would
    give it, in float64.

Rows are solved in parallel with numba (``threads``); each row is computed by one thread in a
fixed order, and the only draw of random numbers is the initialisation (stream
``(seed, "ials_init")``), so with a fixed thread count a run is bit-identical. The factors are
the whole training state: ``fit(train, resume=True)`` on a checkpoint continues from
``epochs_done`` and ends bit-identical to an uninterrupted run.

References
----------
S. Rendle, W. Krichene, L. Zhang, Y. Koren. "Revisiting the Performance of iALS on Item
Recommendation Benchmarks". RecSys 2022; the google-research ``ials`` reference code.

Y. Hu, Y. Koren, C. Volinsky. "Collaborative Filtering for Implicit Feedback Datasets".
ICDM 2008.

G. Takacs, I. Pilaszy, D. Tikk. "Applications of the Conjugate Gradient Method for Implicit
Feedback Collaborative Filtering". RecSys 2011 (the warm-started CG solver).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from dotrec._numba import numba_threads
from dotrec.data.interactions import Interactions
from dotrec.errors import ConfigError
from dotrec.models.base import DotProductModel, EpochCallback, register
from dotrec.random import rng
from dotrec.validate import check_positive

SOLVERS = ("cg", "cholesky")

# Reassociation lets LLVM vectorise the dot products; each row is still computed by one
# thread with one fixed instruction sequence, so results are reproducible.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
# Rows handed to a worker at a time: rows differ a lot in cost (a popular item has thousands
# of users), so dynamic chunks keep both cores busy.
_CHUNK = 32


@numba.njit(inline="always", fastmath=_FASTMATH)
def _matvec(Y, indices, lo, hi, G, lam, v, out):  # pragma: no cover - compiled
    """out = A v for A = sum_t y_t y_t^T + G + lam I (t over indices[lo:hi]); A is never formed."""
    d = len(v)
    for k in range(d):
        out[k] = lam * v[k]
    for j in range(d):
        vj = v[j]
        for k in range(d):
            out[k] += G[j, k] * vj
    t = lo
    while t + 1 < hi:  # two rows at a time: two independent dot products in flight
        i0 = indices[t]
        i1 = indices[t + 1]
        s0 = np.float32(0.0)
        s1 = np.float32(0.0)
        for k in range(d):
            s0 += Y[i0, k] * v[k]
            s1 += Y[i1, k] * v[k]
        for k in range(d):
            out[k] += s0 * Y[i0, k] + s1 * Y[i1, k]
        t += 2
    if t < hi:
        i0 = indices[t]
        s0 = np.float32(0.0)
        for k in range(d):
            s0 += Y[i0, k] * v[k]
        for k in range(d):
            out[k] += s0 * Y[i0, k]


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _cg_rows(X, Y, indptr, indices, G, reg, steps):  # pragma: no cover - compiled
    """``steps`` warm-started CG steps on every row system; updates X (float32) in place."""
    n, d = X.shape
    for u in numba.prange(n):
        lo, hi = indptr[u], indptr[u + 1]
        if lo == hi:
            X[u, :] = 0.0
            continue
        lam = np.float32(reg[u])
        x = X[u].copy()
        r = np.zeros(d, np.float32)
        p = np.empty(d, np.float32)
        ap = np.empty(d, np.float32)
        for t in range(lo, hi):  # r = b - A x with b = sum_t y_t
            i = indices[t]
            for k in range(d):
                r[k] += Y[i, k]
        _matvec(Y, indices, lo, hi, G, lam, x, ap)
        rs = np.float32(0.0)
        for k in range(d):
            r[k] -= ap[k]
            p[k] = r[k]
            rs += r[k] * r[k]
        for _ in range(steps):
            if rs <= 1e-20:
                break
            _matvec(Y, indices, lo, hi, G, lam, p, ap)
            pap = np.float32(0.0)
            for k in range(d):
                pap += p[k] * ap[k]
            a = rs / pap
            rs_new = np.float32(0.0)
            for k in range(d):
                x[k] += a * p[k]
                r[k] -= a * ap[k]
                rs_new += r[k] * r[k]
            beta = rs_new / rs
            rs = rs_new
            for k in range(d):
                p[k] = r[k] + beta * p[k]
        X[u, :] = x


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _cholesky_rows(X, Y, indptr, indices, G, reg):  # pragma: no cover - compiled
    """The exact solution of every row system (GEMM build + Cholesky); updates X in place."""
    n, d = X.shape
    for u in numba.prange(n):
        lo, hi = indptr[u], indptr[u + 1]
        if lo == hi:
            X[u, :] = 0.0
            continue
        m = hi - lo
        B = np.empty((m, d), np.float32)
        z = np.zeros(d)
        for t in range(m):
            i = indices[lo + t]
            for k in range(d):
                B[t, k] = Y[i, k]
                z[k] += Y[i, k]
        A = np.dot(B.T, B)
        A += G
        lam = np.float32(reg[u])
        for j in range(d):
            A[j, j] += lam
        L = np.linalg.cholesky(A)
        for j in range(d):  # L z' = b
            s = z[j]
            for k in range(j):
                s -= L[j, k] * z[k]
            z[j] = s / L[j, j]
        for j in range(d - 1, -1, -1):  # L^T w = z', column-oriented so L is read by rows
            z[j] /= L[j, j]
            zj = z[j]
            for k in range(j):
                z[k] -= L[j, k] * zj
        for k in range(d):
            X[u, k] = z[k]


@numba.njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _observed_sq_error(W, H, indptr, indices):  # pragma: no cover - compiled
    """Per-user sum of (1 - <w_u, h_i>)^2 over the user's observed items (float64)."""
    n, d = W.shape
    out = np.zeros(n)
    for u in numba.prange(n):
        acc = 0.0
        for t in range(indptr[u], indptr[u + 1]):
            i = indices[t]
            s = np.float32(0.0)
            for k in range(d):
                s += W[u, k] * H[i, k]
            acc += (1.0 - np.float64(s)) ** 2
        out[u] = acc
    return out


def frequency_regularization(
    counts: np.ndarray,
    n_other: int,
    regularization: float,
    unobserved_weight: float,
    exponent: float,
) -> np.ndarray:
    """Per-row L2 weights ``regularization * (counts + unobserved_weight * n_other) ** exponent``.

    Parameters
    ----------
    counts : int array of shape (rows,)
        Training pairs per row (|I_u| for users, |U_i| for items).
    n_other : int
        Size of the other side (n_items for users, n_users for items).

    Returns
    -------
    float64 array of shape (rows,)
    """
    base = np.asarray(counts, dtype=np.float64) + unobserved_weight * n_other
    return regularization * base**exponent


def _gramian(X: np.ndarray) -> np.ndarray:
    """X^T X in float64, shape (d, d)."""
    X64 = X.astype(np.float64)
    return X64.T @ X64


class _Sides:
    """The training data in the layout the solvers read: CSR by user and by item, and the
    per-row regularization weights."""

    def __init__(self, train: Interactions, model: IALS) -> None:
        by_user = train.csr
        by_item = by_user.T.tocsr()
        self.user_indptr = by_user.indptr.astype(np.int64)
        self.user_indices = by_user.indices.astype(np.int32)
        self.item_indptr = by_item.indptr.astype(np.int64)
        self.item_indices = by_item.indices.astype(np.int32)
        self.user_reg = model.row_regularization(np.diff(self.user_indptr), train.n_items)
        self.item_reg = model.row_regularization(np.diff(self.item_indptr), train.n_users)


@register
class IALS(DotProductModel):
    """Implicit ALS with frequency-scaled regularization and the Gramian trick (module doc).

    Parameters
    ----------
    embedding_dim : int
        Width d of ``user_factors`` (n_users x d) and ``item_factors`` (n_items x d).
    epochs : int
        Full epochs (a user half-step then an item half-step).
    regularization : float
        L2 weight before frequency scaling; must be > 0 (it keeps every row system positive
        definite).
    regularization_exponent : float
        nu in ``lambda = regularization * (count + unobserved_weight * n_other) ** nu``;
        0 gives a constant L2 weight.
    unobserved_weight : float
        alpha0, the weight of the squared score of every (user, item) pair.
    stddev : float
        The initial factors are N(0, (stddev / sqrt(embedding_dim))^2).
    solver : {"cg", "cholesky"}
        ``"cg"``: warm-started conjugate gradient (fast, the default); ``"cholesky"``: the
        exact per-row solve (slower, monotone objective).
    cg_steps : int
        CG steps per row and half-step (``solver="cg"`` only).
    seed : int
    threads : int or None
        Worker threads; None uses every thread numba may start.

    References
    ----------
    Rendle, Krichene, Zhang, Koren. "Revisiting the Performance of iALS on Item Recommendation
    Benchmarks". RecSys 2022. Hu, Koren, Volinsky. "Collaborative Filtering for Implicit
    Feedback Datasets". ICDM 2008.
    """

    name = "ials"
    size_param = "embedding_dim"

    def __init__(
        self,
        embedding_dim: int = 64,
        epochs: int = 12,
        regularization: float = 0.007,
        regularization_exponent: float = 1.0,
        unobserved_weight: float = 0.3,
        stddev: float = 0.1,
        solver: str = "cg",
        cg_steps: int = 3,
        seed: int = 0,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        check_positive("embedding_dim", embedding_dim)
        check_positive("epochs", epochs, allow_zero=True)
        check_positive("regularization", regularization)
        check_positive("regularization_exponent", regularization_exponent, allow_zero=True)
        check_positive("unobserved_weight", unobserved_weight, allow_zero=True)
        check_positive("stddev", stddev, allow_zero=True)
        check_positive("cg_steps", cg_steps)
        if threads is not None:
            check_positive("threads", threads)
        for key, value in (
            ("embedding_dim", embedding_dim),
            ("epochs", epochs),
            ("cg_steps", cg_steps),
        ):
            if int(value) != value:
                raise ConfigError(f"{key} must be an integer, got {value!r}")
        if solver not in SOLVERS:
            raise ConfigError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
        self.embedding_dim = int(embedding_dim)
        self.epochs = int(epochs)
        self.regularization = float(regularization)
        self.regularization_exponent = float(regularization_exponent)
        self.unobserved_weight = float(unobserved_weight)
        self.stddev = float(stddev)
        self.solver = solver
        self.cg_steps = int(cg_steps)
        self.seed = int(seed)
        self.threads = None if threads is None else int(threads)

    def config(self) -> dict[str, Any]:
        return {
            "embedding_dim": self.embedding_dim,
            "epochs": self.epochs,
            "regularization": self.regularization,
            "regularization_exponent": self.regularization_exponent,
            "unobserved_weight": self.unobserved_weight,
            "stddev": self.stddev,
            "solver": self.solver,
            "cg_steps": self.cg_steps,
            "seed": self.seed,
            "threads": self.threads,
        }

    # ------------------------------------------------------------------ state
    def initialize(self, n_users: int, n_items: int) -> None:
        """Draw the initial factors, N(0, (stddev / sqrt(d))^2), and zero the biases."""
        r = rng(self.seed, "ials_init")
        d = self.embedding_dim
        scale = self.stddev / np.sqrt(d)
        self.user_factors = (r.standard_normal((n_users, d)) * scale).astype(np.float32)
        self.item_factors = (r.standard_normal((n_items, d)) * scale).astype(np.float32)
        self.user_bias = np.zeros(n_users, np.float32)
        self.item_bias = np.zeros(n_items, np.float32)
        self.global_bias = np.float32(0.0)
        self.epochs_done = 0

    def row_regularization(self, counts: np.ndarray, n_other: int) -> np.ndarray:
        """The L2 weight of each row: see :func:`frequency_regularization`."""
        return frequency_regularization(
            counts,
            n_other,
            self.regularization,
            self.unobserved_weight,
            self.regularization_exponent,
        )

    def fold_in(self, item_lists: Sequence[npt.ArrayLike]) -> np.ndarray:
        """Rows ``[w_u, 0]``: each the exact solve of the user's row system (module doc)."""
        lists = self._fold_in_items(item_lists)
        H = self.item_factors.astype(np.float64)
        G = self.unobserved_weight * (H.T @ H)
        lam = self.row_regularization(np.array([len(a) for a in lists]), self.n_items)
        out = np.zeros((len(lists), self.embedding_dim + 1), np.float32)
        for r, items in enumerate(lists):
            Hu = H[items]
            A = Hu.T @ Hu + G
            A[np.diag_indices_from(A)] += lam[r]
            out[r, :-1] = np.linalg.solve(A, Hu.sum(axis=0))
        return out

    # ------------------------------------------------------------------ training
    def _fit(self, train: Interactions, on_epoch: EpochCallback | None) -> None:
        fresh = (
            self.epochs_done == 0
            or self.user_factors.shape != (train.n_users, self.embedding_dim)
            or self.item_factors.shape != (train.n_items, self.embedding_dim)
        )
        if fresh:
            self.initialize(train.n_users, train.n_items)
        self._train_epochs(train, self.epochs, on_epoch)

    def _train_epochs(
        self, train: Interactions, until: int, on_epoch: EpochCallback | None
    ) -> None:
        sides = _Sides(train, self)
        threads = numba_threads(self.threads)
        item_gramian = None
        while self.epochs_done < until:
            # BLAS stays single-threaded: the Gramians are small, the Cholesky solver calls
            # BLAS from every numba thread, and idle-spinning BLAS threads would slow numba's.
            with threadpool_limits(1, user_api="blas"):
                numba.set_num_threads(threads)
                if item_gramian is None:
                    item_gramian = _gramian(self.item_factors)
                self._solve_users(sides, item_gramian)
                user_gramian = _gramian(self.user_factors)
                self._solve_items(sides, user_gramian)
                item_gramian = _gramian(self.item_factors)
                loss = self._objective(sides, user_gramian, item_gramian)
            epoch = self.epochs_done + 1
            if not np.isfinite(loss):
                raise ConfigError(
                    f"ials: the objective became {loss} in epoch {epoch}; the "
                    "row systems are too ill-conditioned for float32, raise "
                    f"regularization (now {self.regularization}) or "
                    f"unobserved_weight (now {self.unobserved_weight})"
                )
            self.epochs_done = epoch
            self.fit_info["epochs"] = epoch
            self.fit_info["loss"] = loss
            if on_epoch is not None:
                on_epoch(epoch, self)

    def _solve_users(self, sides: _Sides, item_gramian: np.ndarray) -> None:
        self._solve(
            self.user_factors,
            self.item_factors,
            sides.user_indptr,
            sides.user_indices,
            item_gramian,
            sides.user_reg,
        )

    def _solve_items(self, sides: _Sides, user_gramian: np.ndarray) -> None:
        self._solve(
            self.item_factors,
            self.user_factors,
            sides.item_indptr,
            sides.item_indices,
            user_gramian,
            sides.item_reg,
        )

    def _solve(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        indptr: np.ndarray,
        indices: np.ndarray,
        gramian: np.ndarray,
        reg: np.ndarray,
    ) -> None:
        """One half-step: every row of X given Y (``gramian`` = Y^T Y)."""
        G = (self.unobserved_weight * gramian).astype(np.float32)
        with numba.parallel_chunksize(_CHUNK):
            if self.solver == "cg":
                _cg_rows(X, Y, indptr, indices, G, reg, self.cg_steps)
            else:
                try:
                    _cholesky_rows(X, Y, indptr, indices, G, reg)
                # numba reports a LinAlgError raised inside a parallel loop as a SystemError
                except (np.linalg.LinAlgError, SystemError):
                    raise ConfigError(
                        "ials: a row system is not positive definite in float32; raise "
                        f"regularization (now {self.regularization}) or unobserved_weight "
                        f"(now {self.unobserved_weight})"
                    ) from None

    # ------------------------------------------------------------------ objective
    def objective(self, train: Interactions) -> float:
        """The training objective L(W, H) of the module doc at the current factors."""
        self._check_fitted()
        sides = _Sides(train, self)
        return self._objective(sides, _gramian(self.user_factors), _gramian(self.item_factors))

    def _objective(
        self, sides: _Sides, user_gramian: np.ndarray, item_gramian: np.ndarray
    ) -> float:
        # sum over all pairs of <w_u, h_i>^2 = trace(W^T W H^T H): no n_users x n_items matrix.
        observed = _observed_sq_error(
            self.user_factors, self.item_factors, sides.user_indptr, sides.user_indices
        ).sum()
        unobserved = self.unobserved_weight * float(np.sum(user_gramian * item_gramian))
        w_sq = np.square(self.user_factors, dtype=np.float64).sum(axis=1)
        h_sq = np.square(self.item_factors, dtype=np.float64).sum(axis=1)
        return float(observed + unobserved + sides.user_reg @ w_sq + sides.item_reg @ h_sq)

"""Optimizer steps for the NCF models: dense Adam, and lazy Adam and SGD on touched rows.

A mini-batch of the NCF models touches at most ``batch_size`` rows of each embedding table, yet
dense Adam reads and writes every row of the table and of both moments at every step (the
moments of untouched rows decay and keep moving them). The "lazy" variant (TensorFlow's
``LazyAdam``, ``tf.keras.optimizers.Adam`` on sparse gradients) updates the moments and the
parameters of the touched rows only; the bias correction uses the global step count, as there.

Per step, given the rows of a batch (with repeats) and one gradient row per example:

    g_r = sum of the example gradients of row r  (+ weight_decay * theta_r)
    m_r = beta1 m_r + (1 - beta1) g_r ;  v_r = beta2 v_r + (1 - beta2) g_r^2
    theta_r -= lr / (1 - beta1^t) * m_r / (sqrt(v_r) / sqrt(1 - beta2^t) + eps)

which is torch.optim.Adam's formula restricted to the touched rows. ``row_sgd`` is
``theta_r -= lr * (g_r + weight_decay * theta_r)``, exactly dense SGD when weight_decay is 0.

The CPU kernels are hand-written in numba because no library offers a row-sparse Adam without
first building (and coalescing) a sparse gradient tensor; PyTorch's ``SparseAdam`` does that
and is slower than fused dense Adam at batch 256. :class:`TorchRows` is the same step in torch
index operations, for a GPU.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy")
def _coalesce(
    rows: np.ndarray, grads: np.ndarray, slot: np.ndarray, acc: np.ndarray, uniq: np.ndarray
) -> int:  # pragma: no cover - compiled
    """Sum the gradient rows of repeated indices into ``acc``; returns the number of rows.

    ``slot`` (one entry per table row, -1 when free) maps a row to its place in ``acc``;
    the caller frees it again. Sums run in batch order, so the result is deterministic.
    """
    n_unique = 0
    width = grads.shape[1]
    for j in range(len(rows)):
        r = rows[j]
        s = slot[r]
        if s < 0:
            slot[r] = n_unique
            uniq[n_unique] = r
            for f in range(width):
                acc[n_unique, f] = grads[j, f]
            n_unique += 1
        else:
            for f in range(width):
                acc[s, f] += grads[j, f]
    return n_unique


@numba.njit(inline="always", fastmath=True, error_model="numpy")
def _adam_row(
    theta: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    g: np.ndarray,
    b1: np.float32,
    b2: np.float32,
    step_size: np.float32,
    inv_bc2_sqrt: np.float32,
    eps: np.float32,
    wd: np.float32,
) -> None:  # pragma: no cover - compiled
    for f in range(len(theta)):
        gf = g[f] + wd * theta[f]
        m = b1 * exp_avg[f] + (np.float32(1.0) - b1) * gf
        v = b2 * exp_avg_sq[f] + (np.float32(1.0) - b2) * gf * gf
        exp_avg[f] = m
        exp_avg_sq[f] = v
        theta[f] -= step_size * m / (np.sqrt(v) * inv_bc2_sqrt + eps)


def _constants(
    lr: float, betas: tuple[float, float], eps: float, weight_decay: float, step: int
) -> tuple[np.float32, ...]:
    """Adam's per-step scalars in float32: beta1, beta2, step size, 1/sqrt(bc2), eps, wd."""
    bc1 = 1.0 - betas[0] ** step
    bc2 = 1.0 - betas[1] ** step
    return tuple(
        np.float32(x)
        for x in (betas[0], betas[1], lr / bc1, 1.0 / math.sqrt(bc2), eps, weight_decay)
    )


# fastmath lets LLVM vectorize the row loops (the square root and division); results stay
# deterministic for a given build.
@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _lazy_adam(
    table: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    rows: np.ndarray,
    grads: np.ndarray,
    slot: np.ndarray,
    acc: np.ndarray,
    uniq: np.ndarray,
    b1: np.float32,
    b2: np.float32,
    step_size: np.float32,
    inv_bc2_sqrt: np.float32,
    eps: np.float32,
    wd: np.float32,
) -> None:  # pragma: no cover - compiled
    n = _coalesce(rows, grads, slot, acc, uniq)
    for q in range(n):
        r = uniq[q]
        slot[r] = -1
        _adam_row(
            table[r], exp_avg[r], exp_avg_sq[r], acc[q], b1, b2, step_size, inv_bc2_sqrt, eps, wd
        )


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _dense_adam(
    theta: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    g: np.ndarray,
    b1: np.float32,
    b2: np.float32,
    step_size: np.float32,
    inv_bc2_sqrt: np.float32,
    eps: np.float32,
    wd: np.float32,
) -> None:  # pragma: no cover - compiled
    _adam_row(theta, exp_avg, exp_avg_sq, g, b1, b2, step_size, inv_bc2_sqrt, eps, wd)


@numba.njit(cache=True, error_model="numpy")
def _row_sgd(
    table: np.ndarray,
    rows: np.ndarray,
    grads: np.ndarray,
    slot: np.ndarray,
    acc: np.ndarray,
    uniq: np.ndarray,
    lr: float,
    weight_decay: float,
) -> None:  # pragma: no cover - compiled
    n = _coalesce(rows, grads, slot, acc, uniq)
    width = table.shape[1]
    for q in range(n):
        r = uniq[q]
        slot[r] = -1
        for f in range(width):
            table[r, f] -= np.float32(lr) * (acc[q, f] + np.float32(weight_decay) * table[r, f])


class NumbaRows:
    """Adam and SGD steps on CPU tensors (NumPy views of them, updated in place)."""

    def __init__(self, n_rows: int, width: int, batch_size: int) -> None:
        self.slot = np.full(n_rows, -1, dtype=np.int64)
        self.acc = np.empty((batch_size, width), dtype=np.float32)
        self.uniq = np.empty(batch_size, dtype=np.int64)

    def adam(
        self,
        table: Any,
        exp_avg: Any,
        exp_avg_sq: Any,
        rows: Any,
        grads: Any,
        *,
        lr: float,
        betas: tuple[float, float],
        eps: float,
        weight_decay: float,
        step: int,
    ) -> None:
        """One lazy Adam step on the rows of ``table`` named by ``rows``."""
        _lazy_adam(
            table.numpy(),
            exp_avg.numpy(),
            exp_avg_sq.numpy(),
            rows.numpy(),
            grads.numpy(),
            self.slot,
            self.acc,
            self.uniq,
            *_constants(lr, betas, eps, weight_decay, step),
        )

    def dense_adam(
        self,
        param: Any,
        exp_avg: Any,
        exp_avg_sq: Any,
        grad: Any,
        *,
        lr: float,
        betas: tuple[float, float],
        eps: float,
        weight_decay: float,
        step: int,
    ) -> None:
        """One Adam step on every element of ``param``."""
        _dense_adam(
            param.numpy().reshape(-1),
            exp_avg.numpy().reshape(-1),
            exp_avg_sq.numpy().reshape(-1),
            grad.contiguous().numpy().reshape(-1),
            *_constants(lr, betas, eps, weight_decay, step),
        )

    def sgd(self, table: Any, rows: Any, grads: Any, *, lr: float, weight_decay: float) -> None:
        """One SGD step on the rows of ``table`` named by ``rows``."""
        _row_sgd(
            table.numpy(),
            rows.numpy(),
            grads.numpy(),
            self.slot,
            self.acc,
            self.uniq,
            lr,
            weight_decay,
        )


class TorchRows:
    """The same steps in torch operations (any device)."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch

    def _coalesce(self, rows: Any, grads: Any) -> tuple[Any, Any]:
        uniq, inverse = self.torch.unique(rows, return_inverse=True)
        acc = self.torch.zeros((len(uniq), grads.shape[1]), dtype=grads.dtype, device=grads.device)
        return uniq, acc.index_add_(0, inverse, grads)

    def adam(
        self,
        table: Any,
        exp_avg: Any,
        exp_avg_sq: Any,
        rows: Any,
        grads: Any,
        *,
        lr: float,
        betas: tuple[float, float],
        eps: float,
        weight_decay: float,
        step: int,
    ) -> None:
        """One lazy Adam step on the rows of ``table`` named by ``rows``."""
        uniq, g = self._coalesce(rows, grads)
        theta, m, v = table[uniq], exp_avg[uniq], exp_avg_sq[uniq]
        self.dense_adam(
            theta, m, v, g, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, step=step
        )
        table[uniq], exp_avg[uniq], exp_avg_sq[uniq] = theta, m, v

    def dense_adam(
        self,
        param: Any,
        exp_avg: Any,
        exp_avg_sq: Any,
        grad: Any,
        *,
        lr: float,
        betas: tuple[float, float],
        eps: float,
        weight_decay: float,
        step: int,
    ) -> None:
        """One Adam step on every element of ``param`` (all tensors updated in place)."""
        g = grad.add(param, alpha=weight_decay) if weight_decay else grad
        exp_avg.mul_(betas[0]).add_(g, alpha=1.0 - betas[0])
        exp_avg_sq.mul_(betas[1]).addcmul_(g, g, value=1.0 - betas[1])
        denom = (exp_avg_sq.sqrt() / math.sqrt(1.0 - betas[1] ** step)).add_(eps)
        param.addcdiv_(exp_avg, denom, value=-lr / (1.0 - betas[0] ** step))

    def sgd(self, table: Any, rows: Any, grads: Any, *, lr: float, weight_decay: float) -> None:
        """One SGD step on the rows of ``table`` named by ``rows``."""
        uniq, g = self._coalesce(rows, grads)
        theta = table[uniq]
        if weight_decay:
            g.add_(theta, alpha=weight_decay)
        table[uniq] = theta.sub_(g, alpha=lr)

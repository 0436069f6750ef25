"""A whole GMF epoch with lazy Adam, compiled with numba (the CPU fast path of ``GMF``).

GMF's arithmetic per example is that of matrix factorization (a weighted dot product of two
k-vectors), far too little to amortise a framework's per-operation cost at batch 256: in
torch the step takes several times its arithmetic. This kernel runs the epoch's mini-batches
in one compiled loop with exactly the step of :mod:`dotrec.models._ncf_train` for GMF with
``optimizer="lazy_adam"``: the batch's mean binary cross-entropy, gradients at the
pre-step weights, lazy Adam on the touched embedding rows and Adam on ``w`` and ``b``, L2 as
Adam's weight decay on everything but ``b``. It is written by hand because no library fuses
this loop; a test checks it against the torch step.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from dotrec.models._row_optim import _adam_row, _coalesce


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def gmf_lazy_adam_epoch(
    P: np.ndarray,
    Q: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    mP: np.ndarray,
    vP: np.ndarray,
    mQ: np.ndarray,
    vQ: np.ndarray,
    mw: np.ndarray,
    vw: np.ndarray,
    mb: np.ndarray,
    vb: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step: int,
    slot_u: np.ndarray,
    slot_i: np.ndarray,
) -> tuple[float, int]:  # pragma: no cover
    """Train one epoch in place; returns (summed loss, step count after the epoch).

    ``w`` has shape (k,) and ``b`` (1,); ``slot_u``/``slot_i`` are -1 filled, one per row.
    """
    k = P.shape[1]
    n = len(users)
    gu = np.empty((batch_size, k), np.float32)
    gi = np.empty((batch_size, k), np.float32)
    acc = np.empty((batch_size, k), np.float32)
    uniq = np.empty(batch_size, np.int64)
    gw = np.empty(k, np.float32)
    gb = np.empty(1, np.float32)
    b1 = np.float32(beta1)
    b2 = np.float32(beta2)
    e32 = np.float32(eps)
    wd = np.float32(weight_decay)
    zero = np.float32(0.0)
    total = 0.0
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        m = stop - start
        inv_m = np.float32(1.0 / m)
        step += 1
        step_size = np.float32(lr / (1.0 - beta1**step))
        inv_bc2 = np.float32(1.0 / math.sqrt(1.0 - beta2**step))
        gw[:] = zero
        gbias = 0.0
        for j in range(m):
            u = users[start + j]
            i = items[start + j]
            y = labels[start + j]
            s = np.float32(0.0)
            for f in range(k):
                s += w[f] * P[u, f] * Q[i, f]
            s += b[0]
            # loss = softplus(s) - y s, computed stably; sigmoid from the same exponential.
            if s > 0:
                z = math.exp(-s)
                sig = 1.0 / (1.0 + z)
                total += math.log1p(z) + s - y * s
            else:
                z = math.exp(s)
                sig = z / (1.0 + z)
                total += math.log1p(z) - y * s
            d = np.float32(sig - y) * inv_m
            gbias += float(d)
            for f in range(k):
                pf = P[u, f]
                qf = Q[i, f]
                gw[f] += d * pf * qf
                gu[j, f] = d * w[f] * qf
                gi[j, f] = d * w[f] * pf
        gb[0] = np.float32(gbias)
        for table, ma, va, rows, grads, slot in (
            (P, mP, vP, users, gu, slot_u),
            (Q, mQ, vQ, items, gi, slot_i),
        ):
            cnt = _coalesce(rows[start:stop], grads[:m], slot, acc, uniq)
            for q in range(cnt):
                r = uniq[q]
                slot[r] = -1
                _adam_row(table[r], ma[r], va[r], acc[q], b1, b2, step_size, inv_bc2, e32, wd)
        _adam_row(w, mw, vw, gw, b1, b2, step_size, inv_bc2, e32, wd)
        _adam_row(b, mb, vb, gb, b1, b2, step_size, inv_bc2, e32, zero)
    return total, step

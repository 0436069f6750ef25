"""Where an MLP training step's time goes at k = 64, batch 256 (issue #12's 15 s/epoch target).

Times the hand-derived forward and backward pass alone (no optimizer) of the MLP tower
[256, 256, 128, 64] in bfloat16, three ways: one call over the batch with 2 intra-op threads
(what training does), two Python threads each running half the batch with 1 intra-op thread
(data parallelism inside a step: the same update once the halves' gradients are summed), and
one thread over the whole batch. Beside them, the floor: the step's nine matrix products alone
(three forward, six backward) in bfloat16 with preallocated outputs, nothing else. An epoch on
ml-1m is 19,418 such steps. Run on a quiet machine:

    python benchmarks/ncf_step.py
"""

import threading
import time
from typing import Any

import torch

from dotrec.machine import machine_line
from dotrec.models._ncf_train import forward_backward

print(machine_line(), flush=True)
torch.manual_seed(0)
nu, ni, e = 6040, 3706, 128
w = {
    "mlp.user_embedding": torch.randn(nu, e) * 0.01,
    "mlp.item_embedding": torch.randn(ni, e) * 0.01,
    "output.weight": torch.randn(1, 64) * 0.1,
    "output.bias": torch.zeros(1),
}
dims = [256, 256, 128, 64]
tower = [
    ((torch.randn(dims[i + 1], dims[i]) * 0.05).bfloat16(), torch.zeros(dims[i + 1]).bfloat16())
    for i in range(3)
]
B = 256
users = torch.randint(0, nu, (B * 2000,))
items = torch.randint(0, ni, (B * 2000,))
labels = (torch.rand(B * 2000) < 0.2).float()


def run_whole(steps: int, threads: int = 2) -> float:
    """The whole batch in one call per step, on ``threads`` intra-op threads."""
    torch.set_num_threads(threads)
    t = time.perf_counter()
    for s in range(steps):
        sl = slice(s * B, (s + 1) * B)
        forward_backward(torch, w, users[sl], items[sl], labels[sl], tower)
    return (time.perf_counter() - t) / steps * 1e6


def run_halves(steps: int) -> float:
    torch.set_num_threads(1)
    out: list[Any] = [None, None]
    bar = threading.Barrier(2)

    def worker(h: int) -> None:
        for s in range(steps):
            sl = slice(s * B + h * B // 2, s * B + (h + 1) * B // 2)
            out[h] = forward_backward(torch, w, users[sl], items[sl], labels[sl], tower)
            bar.wait()

    th = [threading.Thread(target=worker, args=(h,)) for h in (0, 1)]
    t = time.perf_counter()
    for x in th:
        x.start()
    for x in th:
        x.join()
    return (time.perf_counter() - t) / steps * 1e6


def run_products(steps: int, threads: int = 2) -> float:
    """Only the nine bfloat16 products of a step (forward, input and weight gradients)."""
    torch.set_num_threads(threads)
    x = torch.randn(B, dims[0]).bfloat16()
    zs = [x] + [torch.empty(B, d, dtype=torch.bfloat16) for d in dims[1:]]
    dz = [torch.randn(B, d).bfloat16() for d in dims]
    dw = [torch.empty(dims[i + 1], dims[i], dtype=torch.bfloat16) for i in range(3)]
    t = time.perf_counter()
    for _ in range(steps):
        for i in range(3):
            torch.mm(zs[i], tower[i][0].t(), out=zs[i + 1])
        for i in (2, 1, 0):
            torch.mm(dz[i + 1].t(), zs[i], out=dw[i])
            torch.mm(dz[i + 1], tower[i][0], out=dz[i])
    return (time.perf_counter() - t) / steps * 1e6


runs = {
    "products only": run_products,
    "2 threads": run_whole,
    "2 half-batches": run_halves,
    "1 thread": lambda steps: run_whole(steps, threads=1),
}
order = ("products only", "2 threads", "2 half-batches", "1 thread", "products only", "2 threads")
for name in order:
    f = runs[name]
    f(50)
    us = f(400)
    print(
        f"{name:15s} {us:6.0f} us/step = {us * 19418 / 1e6:5.1f} s per ml-1m epoch",
        flush=True,
    )

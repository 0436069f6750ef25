"""The model under test: an MLP that learns the similarity of two true embeddings.

Input is the concatenation ``[u, i]`` (``2d`` values); hidden layers ``[2md, md, md/2]`` with ReLU,
a linear output, ``m = first_layer_mult``. Trained on the train pairs with the MSE loss, Adam
(lr 0.001), mini-batches of 256 in a fresh random order every epoch, and evaluated after the last
epoch. torch is imported only when a model is trained.

Weights are initialised like :class:`torch.nn.Linear` (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``) but
from a generator seeded by ``(seed, d, n_users, m, repeat)``; the global torch RNG is never used.
On the CPU with a fixed thread count a run is bit-identical for the same seed; on CUDA the same
seed gives close, not identical, numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dotrec._torch import resolve_device
from dotrec.approx.data import DotDataset, FloatArray, IntArray, rmse
from dotrec.errors import ConfigError, DotrecError
from dotrec.random import int_seed

if TYPE_CHECKING:
    import torch

EVAL_BATCH = 1 << 16


@dataclass(frozen=True)
class MLPFit:
    """RMSE of a trained MLP on the three sets, and the wall-clock and CPU seconds training plus
    evaluation took (CPU seconds of the whole process; they are less affected by other jobs)."""

    train_rmse: float
    test_rmse: float
    fresh_rmse: float
    seconds: float
    cpu_seconds: float


def hidden_sizes(d: int, first_layer_mult: int) -> list[int]:
    """Hidden layer widths ``[2md, md, md/2]`` (the last rounded down, at least 1)."""
    if first_layer_mult < 1:
        raise ConfigError(f"first_layer_mult must be >= 1, got {first_layer_mult}")
    m = first_layer_mult
    return [2 * m * d, m * d, max(1, m * d // 2)]


def _build_mlp(sizes: list[int], generator: torch.Generator) -> torch.nn.Sequential:
    import torch

    layers: list[torch.nn.Module] = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        # skip_init: no draw from the global RNG; the weights come from `generator` below.
        lin = torch.nn.utils.skip_init(torch.nn.Linear, n_in, n_out)
        bound = 1.0 / math.sqrt(n_in)
        with torch.no_grad():
            lin.weight.uniform_(-bound, bound, generator=generator)
            lin.bias.uniform_(-bound, bound, generator=generator)
        layers.append(lin)
        if k < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _predict(
    net: torch.nn.Module,
    user_f: torch.Tensor,
    item_f: torch.Tensor,
    users: IntArray | None = None,
    items: IntArray | None = None,
) -> FloatArray:
    """MLP outputs for pairs ``(user_f[users[k]], item_f[items[k]])``, or row k with row k."""
    import torch

    size = user_f.shape[0] if users is None else users.shape[0]
    out = np.empty(size, dtype=np.float64)

    def rows(f: torch.Tensor, idx: IntArray | None, s: int) -> torch.Tensor:
        if idx is None:
            return f[s : s + EVAL_BATCH]
        return f[torch.as_tensor(idx[s : s + EVAL_BATCH], device=f.device)]

    with torch.inference_mode():
        for s in range(0, size, EVAL_BATCH):
            x = torch.cat((rows(user_f, users, s), rows(item_f, items, s)), dim=1)
            out[s : s + EVAL_BATCH] = net(x).squeeze(1).double().cpu().numpy()
    return out


def train_mlp(
    data: DotDataset,
    first_layer_mult: int,
    *,
    seed: int,
    repeat: int = 0,
    epochs: int = 32,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    device: str = "cpu",
    threads: int = 1,
    on_epoch: Callable[[int], Any] | None = None,
) -> MLPFit:
    """Train the MLP on ``data``'s train pairs and return its RMSE on train, test and fresh.

    ``on_epoch(epoch)`` is called after each epoch (1-based). ``threads`` sets torch's intra-op
    threads for the duration of the call.
    """
    import torch

    if epochs < 1 or batch_size < 1 or not learning_rate > 0:
        raise ConfigError(
            f"need epochs >= 1, batch_size >= 1 and learning_rate > 0, got "
            f"{epochs}, {batch_size}, {learning_rate}"
        )
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    dev_name = resolve_device(device)
    d, n_users = data.dim, data.user_factors.shape[0]
    keys = (d, n_users, first_layer_mult, repeat)
    sizes = [2 * d, *hidden_sizes(d, first_layer_mult), 1]
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start, cpu_start = time.perf_counter(), time.process_time()
        dev = torch.device(dev_name)

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(
                a, device=dev, dtype=torch.float32 if a.dtype.kind == "f" else torch.long
            )

        user_f, item_f = tensor(data.user_factors), tensor(data.item_factors)
        users, items = tensor(data.train_users), tensor(data.train_items)
        labels = tensor(data.train_labels)
        net = _build_mlp(
            sizes, torch.Generator().manual_seed(int_seed(seed, "approx-dot/mlp-init", *keys))
        ).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=learning_rate, fused=True)
        order = torch.Generator().manual_seed(int_seed(seed, "approx-dot/mlp-order", *keys))
        n = users.shape[0]
        for epoch in range(1, epochs + 1):
            perm = torch.randperm(n, generator=order).to(dev)
            ep_users, ep_items, ep_labels = users[perm], items[perm], labels[perm]
            for s in range(0, n, batch_size):
                x = torch.cat(
                    (user_f[ep_users[s : s + batch_size]], item_f[ep_items[s : s + batch_size]]),
                    dim=1,
                )
                loss = torch.nn.functional.mse_loss(
                    net(x).squeeze(1), ep_labels[s : s + batch_size]
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if on_epoch is not None:
                on_epoch(epoch)

        net.eval()
        result = {
            part: rmse(_predict(net, user_f, item_f, *data.part(part)[:2]), data.labels(part))
            for part in ("train", "test")
        }
        result["fresh"] = rmse(
            _predict(net, tensor(data.fresh_user_factors), tensor(data.fresh_item_factors)),
            data.fresh_labels,
        )
        if not all(np.isfinite(v) for v in result.values()):
            raise DotrecError(f"MLP training diverged (RMSE {result}); lower the learning rate")
        return MLPFit(
            train_rmse=result["train"],
            test_rmse=result["test"],
            fresh_rmse=result["fresh"],
            seconds=time.perf_counter() - start,
            cpu_seconds=time.process_time() - cpu_start,
        )
    finally:
        torch.set_num_threads(old_threads)

"""The training step of GMF, MLP and NeuMF: hand-derived gradients and three optimizers.

The forward pass and its gradients are written out (the models are a gather, an elementwise
product, a ReLU tower and a logistic output), so a step runs about 30 tensor operations and no
autograd graph: at batch 256 the graph's bookkeeping cost as much as the arithmetic. The
gradients are those of ``_forward`` in :mod:`dotrec.models.ncf` under autograd (a test checks
this): the batch's mean binary cross-entropy. Embedding gradients come out as one row per
example; the optimizer decides how they reach the tables:

``adam``
    Dense Adam (Keras semantics, the reference): the rows are scattered into full-size
    gradient tables and every parameter moves at every step.
``lazy_adam``
    Adam on the touched rows only (see :mod:`dotrec.models._row_optim`); the dense layers use
    ordinary Adam.
SGD (NeuMF with pretraining)
    Plain SGD. With ``lazy_adam`` the L2 shrinkage applies to the touched rows only; without
    L2 (the paper's setting) both give the same update.

``precision="bf16"`` runs the MLP tower's matrix products in bfloat16 (float32 accumulation,
float32 master weights, optimizer and loss); GMF's elementwise arithmetic stays float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dotrec.models._gmf_kernel import gmf_lazy_adam_epoch
from dotrec.models._row_optim import NumbaRows, TorchRows

BETAS = (0.9, 0.999)
EPS = 1e-8
TABLES = ("gmf.user_embedding", "gmf.item_embedding", "mlp.user_embedding",
          "mlp.item_embedding")


@dataclass(frozen=True)
class StepConfig:
    """What a training step needs besides the weights."""

    optimizer: str          # "adam" or "lazy_adam"
    sgd: bool               # plain SGD (NeuMF with pretraining) instead of Adam
    learning_rate: float
    regularization: float
    batch_size: int
    n_hidden: int
    precision: str          # "fp32" or "bf16"


def forward_backward(torch: Any, w: dict[str, Any], users: Any, items: Any, labels: Any,
                     n_hidden: int, mm_dtype: Any
                     ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Summed loss, per-example embedding gradients and dense gradients of one batch.

    Gradients are of the batch's *mean* loss. ``w`` holds float32 tensors; the tower's matrix
    products run in ``mm_dtype``.
    """
    F = torch.nn.functional
    n = len(users)
    parts = []
    if "gmf.user_embedding" in w:
        pu = w["gmf.user_embedding"].index_select(0, users)
        qi = w["gmf.item_embedding"].index_select(0, items)
        parts.append(pu * qi)
    low = mm_dtype != torch.float32
    if n_hidden:
        x = torch.cat([w["mlp.user_embedding"].index_select(0, users),
                       w["mlp.item_embedding"].index_select(0, items)], dim=1)
        weights = [w[f"mlp.{layer}.weight"] for layer in range(n_hidden)]
        biases = [w[f"mlp.{layer}.bias"] for layer in range(n_hidden)]
        if low:
            x = x.to(mm_dtype)
            weights = [t.to(mm_dtype) for t in weights]
            biases = [t.to(mm_dtype) for t in biases]
        zs = [x]
        for weight, bias in zip(weights, biases):
            zs.append(torch.addmm(bias, zs[-1], weight.t()).relu_())
        parts.append(zs[-1].float() if low else zs[-1])
    h = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    w_out = w["output.weight"][0]
    logits = torch.addmv(w["output.bias"], h, w_out)
    loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum")
    d = (torch.sigmoid(logits) - labels).div_(n)
    dense = {"output.weight": (h.t() @ d).unsqueeze(0), "output.bias": d.sum().reshape(1)}
    dh = torch.outer(d, w_out)
    emb: dict[str, Any] = {}
    k = 0
    if "gmf.user_embedding" in w:
        k = pu.shape[1]
        dg = dh[:, :k]
        emb["gmf.user_embedding"] = dg * qi
        emb["gmf.item_embedding"] = dg * pu
    if n_hidden:
        dz = dh[:, k:].to(mm_dtype) if low else dh[:, k:]
        for layer in range(n_hidden - 1, -1, -1):
            dz = torch.ops.aten.threshold_backward(dz, zs[layer + 1], 0)
            dw = dz.t() @ zs[layer]
            db = dz.sum(0)
            dense[f"mlp.{layer}.weight"] = dw.float() if low else dw
            dense[f"mlp.{layer}.bias"] = db.float() if low else db
            dz = dz @ weights[layer]
        if low:
            dz = dz.float()
        e = x.shape[1] // 2
        emb["mlp.user_embedding"] = dz[:, :e]
        emb["mlp.item_embedding"] = dz[:, e:]
    return loss, emb, dense


class Trainer:
    """One fit's parameters (on the device), optimizer state and training step."""

    def __init__(self, torch: Any, weights: dict[str, np.ndarray], cfg: StepConfig,
                 device: str, saved_state: dict[str, dict[str, np.ndarray]]) -> None:
        self.torch, self.cfg = torch, cfg
        self.device = torch.device(device)
        on_cpu = self.device.type == "cpu"
        self.weights = weights
        # On the CPU the tensors share memory with ``weights``: steps update the arrays.
        self.params = {name: (torch.from_numpy(a) if on_cpu else torch.from_numpy(a).to(device))
                       for name, a in weights.items()}
        self.mm_dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
        self.lazy = cfg.optimizer == "lazy_adam"
        self.steps: NumbaRows | TorchRows = TorchRows(torch)
        if on_cpu:
            width = max(w.shape[1] for n, w in weights.items() if n in TABLES)
            n_rows = max(w.shape[0] for n, w in weights.items() if n in TABLES)
            self.steps = NumbaRows(n_rows, width, cfg.batch_size)
        #: Adam moments per parameter (SGD keeps none) and the global step count.
        self.state: dict[str, dict[str, Any]] = {}
        self.step_count = 0
        if not cfg.sgd:
            for name, p in self.params.items():
                saved = saved_state.get(name)
                self.state[name] = {
                    m: (torch.from_numpy(np.array(saved[m], dtype=np.float32)).to(self.device)
                        if saved else torch.zeros_like(p))
                    for m in ("exp_avg", "exp_avg_sq")}
                if saved:
                    self.step_count = max(self.step_count, int(saved["step"]))
        # GMF with lazy Adam on the CPU: the whole epoch in one compiled loop (same step).
        self.gmf_kernel = (on_cpu and self.lazy and not cfg.sgd and cfg.n_hidden == 0
                           and "gmf.user_embedding" in weights)
        dense_tables = not self.lazy and (not cfg.sgd or cfg.regularization > 0)
        self._dense_grad = {name: torch.zeros_like(p) for name, p in self.params.items()
                            if name in TABLES and dense_tables}

    def epoch(self, users: np.ndarray, items: np.ndarray, labels: np.ndarray) -> float:
        """Train one pass over the (already shuffled) examples; returns the mean loss."""
        torch, cfg = self.torch, self.cfg
        if self.gmf_kernel:
            return self._gmf_epoch(users, items, labels)
        u_all = torch.from_numpy(users).to(self.device)
        i_all = torch.from_numpy(items).to(self.device)
        y_all = torch.from_numpy(labels).to(self.device)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        bs = cfg.batch_size
        for s in range(0, len(users), bs):
            u, i = u_all[s:s + bs], i_all[s:s + bs]
            loss, emb, dense = forward_backward(torch, self.params, u, i, y_all[s:s + bs],
                                                cfg.n_hidden, self.mm_dtype)
            total += loss
            for name, g in emb.items():
                rows = u if name.endswith("user_embedding") else i
                if name in self._dense_grad:
                    dense[name] = self._dense_grad[name].zero_().index_add_(0, rows, g)
                else:
                    self._update_rows(name, rows, g)
            self._update_dense(dense)
        self.sync_weights()
        return float(total) / max(1, len(users))

    def _gmf_epoch(self, users: np.ndarray, items: np.ndarray, labels: np.ndarray) -> float:
        w, st = self.weights, {n: {m: t.numpy() for m, t in v.items()}
                               for n, v in self.state.items()}
        pu, qi = "gmf.user_embedding", "gmf.item_embedding"
        ow, ob = "output.weight", "output.bias"
        slots = [np.full(w[n].shape[0], -1, dtype=np.int64) for n in (pu, qi)]
        total, self.step_count = gmf_lazy_adam_epoch(
            w[pu], w[qi], w[ow].reshape(-1), w[ob],
            st[pu]["exp_avg"], st[pu]["exp_avg_sq"], st[qi]["exp_avg"], st[qi]["exp_avg_sq"],
            st[ow]["exp_avg"].reshape(-1), st[ow]["exp_avg_sq"].reshape(-1),
            st[ob]["exp_avg"], st[ob]["exp_avg_sq"], users, items, labels, self.cfg.batch_size,
            self.cfg.learning_rate, BETAS[0], BETAS[1], EPS, self.cfg.regularization,
            self.step_count, *slots)
        return float(total) / max(1, len(users))

    def _update_rows(self, name: str, rows: Any, g: Any) -> None:
        cfg = self.cfg
        wd = cfg.regularization
        if cfg.sgd:
            self.steps.sgd(self.params[name], rows, g, lr=cfg.learning_rate, weight_decay=wd)
        else:
            st = self.state[name]
            self.steps.adam(self.params[name], st["exp_avg"], st["exp_avg_sq"], rows, g,
                            lr=cfg.learning_rate, betas=BETAS, eps=EPS, weight_decay=wd,
                            step=self.step_count + 1)

    def _update_dense(self, grads: dict[str, Any]) -> None:
        cfg = self.cfg
        self.step_count += 1
        for name, g in grads.items():
            p = self.params[name]
            wd = 0.0 if name.endswith("bias") else cfg.regularization
            if cfg.sgd:
                if wd:
                    p.mul_(1.0 - cfg.learning_rate * wd)
                p.sub_(g, alpha=cfg.learning_rate)
            else:
                st = self.state[name]
                self.steps.dense_adam(p, st["exp_avg"], st["exp_avg_sq"], g,
                                      lr=cfg.learning_rate, betas=BETAS, eps=EPS,
                                      weight_decay=wd, step=self.step_count)

    def sync_weights(self) -> None:
        """Copy device parameters back into the NumPy weights (a no-op on the CPU)."""
        if self.device.type != "cpu":
            for name, p in self.params.items():
                self.weights[name][...] = p.cpu().numpy()

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Optimizer state as ``adam.NAME.MOMENT`` arrays (for an exact resume)."""
        out: dict[str, np.ndarray] = {}
        for name, st in self.state.items():
            for key, value in st.items():
                out[f"adam.{name}.{key}"] = value.cpu().numpy().copy()
            out[f"adam.{name}.step"] = np.array(float(self.step_count), dtype=np.float32)
        return out

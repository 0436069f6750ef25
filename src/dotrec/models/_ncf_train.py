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
TABLES = ("gmf.user_embedding", "gmf.item_embedding", "mlp.user_embedding", "mlp.item_embedding")


@dataclass(frozen=True)
class StepConfig:
    """What a training step needs besides the weights."""

    optimizer: str  # "adam" or "lazy_adam"
    sgd: bool  # plain SGD (NeuMF with pretraining) instead of Adam
    learning_rate: float
    regularization: float
    batch_size: int
    n_hidden: int
    precision: str  # "fp32" or "bf16"


def forward_backward(
    torch: Any, w: dict[str, Any], users: Any, items: Any, labels: Any, tower: list[tuple[Any, Any]]
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Summed loss, per-example embedding gradients and dense gradients of one batch.

    Gradients are of the batch's *mean* loss. ``w`` holds the float32 parameters; ``tower``
    the MLP layers' (weight, bias) in the dtype of the tower's products (float32, or bfloat16
    copies), whose gradients come back in that dtype.
    """
    F = torch.nn.functional
    n = len(users)
    parts = []
    if "gmf.user_embedding" in w:
        pu = w["gmf.user_embedding"].index_select(0, users)
        qi = w["gmf.item_embedding"].index_select(0, items)
        parts.append(pu * qi)
    if tower:
        dtype = tower[0][0].dtype
        x = torch.cat(
            [
                w["mlp.user_embedding"].index_select(0, users),
                w["mlp.item_embedding"].index_select(0, items),
            ],
            dim=1,
        ).to(dtype)
        zs = [x]
        for weight, bias in tower:
            zs.append(torch.addmm(bias, zs[-1], weight.t()).relu_())
        parts.append(zs[-1].float())
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
    if tower:
        dz = dh[:, k:].to(dtype)
        for layer in range(len(tower) - 1, -1, -1):
            # aten's fused ReLU backward, called by overload: the op packet's dispatch costs
            # more than the kernel at these sizes.
            dz = torch.ops.aten.threshold_backward.default(dz, zs[layer + 1], 0)
            dense[f"mlp.{layer}.weight"] = dz.t() @ zs[layer]
            dense[f"mlp.{layer}.bias"] = dz.sum(0)
            dz = dz @ tower[layer][0]
        dz = dz.float()
        e = x.shape[1] // 2
        emb["mlp.user_embedding"] = dz[:, :e]
        emb["mlp.item_embedding"] = dz[:, e:]
    return loss, emb, dense


class Trainer:
    """One fit's parameters (on the device), optimizer state and training step.

    The dense parameters (tower and output layer) live in one flat float32 buffer, decayed
    weights first and biases last, so that one Adam call updates them all and bfloat16 copies
    of the tower are one conversion.
    """

    def __init__(
        self,
        torch: Any,
        weights: dict[str, np.ndarray],
        cfg: StepConfig,
        device: str,
        saved_state: dict[str, dict[str, np.ndarray]],
    ) -> None:
        self.torch, self.cfg = torch, cfg
        self.device = torch.device(device)
        on_cpu = self.device.type == "cpu"
        self.weights = weights
        dense = sorted((n for n in weights if n not in TABLES), key=lambda n: n.endswith("bias"))
        self.n_decayed = sum(weights[n].size for n in dense if not n.endswith("bias"))
        self.slices: dict[str, tuple[int, int]] = {}
        flat = np.empty(sum(weights[n].size for n in dense), dtype=np.float32)
        offset = 0
        for name in dense:
            size = weights[name].size
            flat[offset : offset + size] = weights[name].reshape(-1)
            self.slices[name] = (offset, offset + size)
            if on_cpu:  # the model's arrays become views of the buffer the optimizer updates
                weights[name] = flat[offset : offset + size].reshape(weights[name].shape)
            offset += size
        # On the CPU the tensors share memory with ``weights``: steps update the arrays.
        self.flat = torch.from_numpy(flat).to(self.device)
        self.params = {
            name: (torch.from_numpy(a) if on_cpu else torch.from_numpy(a).to(device))
            for name, a in weights.items()
            if name in TABLES
        }
        for name, (lo, hi) in self.slices.items():
            self.params[name] = self.flat[lo:hi].view(weights[name].shape)
        self.grad_flat = torch.zeros_like(self.flat)
        self.mm_dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
        self.grads = {
            name: self.grad_flat[lo:hi].view(weights[name].shape)
            for name, (lo, hi) in self.slices.items()
        }
        # The tower's weights and biases, as float32 views or views of a low-precision copy
        # of their span of the flat buffer (refreshed by one conversion per step).
        names = [n for i in range(cfg.n_hidden) for n in (f"mlp.{i}.weight", f"mlp.{i}.bias")]
        self.tower_span = (
            min((self.slices[n][0] for n in names), default=0),
            max((self.slices[n][1] for n in names), default=0),
        )
        lo = self.tower_span[0]
        self.low = (
            None
            if self.mm_dtype == torch.float32
            else torch.empty(self.tower_span[1] - lo, dtype=self.mm_dtype, device=self.device)
        )
        source = (
            self.params
            if self.low is None
            else {
                n: self.low[a - lo : b - lo].view(weights[n].shape)
                for n, (a, b) in self.slices.items()
                if n in names
            }
        )
        self.tower = [(source[names[2 * i]], source[names[2 * i + 1]]) for i in range(cfg.n_hidden)]
        self.lazy = cfg.optimizer == "lazy_adam"
        self.steps: NumbaRows | TorchRows = TorchRows(torch)
        if on_cpu:
            width = max(w.shape[1] for n, w in weights.items() if n in TABLES)
            n_rows = max(w.shape[0] for n, w in weights.items() if n in TABLES)
            self.steps = NumbaRows(n_rows, width, cfg.batch_size)
        #: Adam moments per table, and of the flat dense buffer; the global step count.
        self.state: dict[str, dict[str, Any]] = {}
        self.step_count = 0
        if not cfg.sgd:
            for name in list(self.params) + ["dense"]:
                p = self.flat if name == "dense" else self.params[name]
                self.state[name] = {m: torch.zeros_like(p) for m in ("exp_avg", "exp_avg_sq")}
            for name, saved in saved_state.items():
                for m in ("exp_avg", "exp_avg_sq"):
                    value = torch.from_numpy(np.asarray(saved[m], dtype=np.float32).reshape(-1))
                    if name in self.slices:
                        lo, hi = self.slices[name]
                        self.state["dense"][m][lo:hi] = value.to(self.device)
                    else:
                        self.state[name][m].view(-1)[:] = value.to(self.device)
                self.step_count = max(self.step_count, int(saved["step"]))
        # GMF with lazy Adam on the CPU: the whole epoch in one compiled loop (same step).
        self.gmf_kernel = (
            on_cpu
            and self.lazy
            and not cfg.sgd
            and cfg.n_hidden == 0
            and "gmf.user_embedding" in weights
        )
        dense_tables = not self.lazy and (not cfg.sgd or cfg.regularization > 0)
        self._dense_grad = {
            name: torch.zeros_like(p)
            for name, p in self.params.items()
            if name in TABLES and dense_tables
        }

    def _tower(self) -> list[tuple[Any, Any]]:
        """The MLP layers' (weight, bias) in the dtype of the tower's products."""
        if self.low is not None:
            self.low.copy_(self.flat[self.tower_span[0] : self.tower_span[1]])
        return self.tower

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
            u, i = u_all[s : s + bs], i_all[s : s + bs]
            loss, emb, dense = forward_backward(
                torch, self.params, u, i, y_all[s : s + bs], self._tower()
            )
            total += loss
            self.step_count += 1
            for name, g in emb.items():
                rows = u if name.endswith("user_embedding") else i
                if name in self._dense_grad:
                    self._update_table(name, self._dense_grad[name].zero_().index_add_(0, rows, g))
                else:
                    self._update_rows(name, rows, g)
            for name, g in dense.items():
                self.grads[name].copy_(g)
            self._update_dense()
        self.sync_weights()
        return float(total) / max(1, len(users))

    def _gmf_epoch(self, users: np.ndarray, items: np.ndarray, labels: np.ndarray) -> float:
        w, cfg = self.weights, self.cfg
        st = {n: {m: t.numpy() for m, t in v.items()} for n, v in self.state.items()}
        pu, qi = "gmf.user_embedding", "gmf.item_embedding"
        (w_lo, w_hi), (b_lo, b_hi) = self.slices["output.weight"], self.slices["output.bias"]
        flat, m, v = self.flat.numpy(), st["dense"]["exp_avg"], st["dense"]["exp_avg_sq"]
        slots = [np.full(w[n].shape[0], -1, dtype=np.int64) for n in (pu, qi)]
        total, self.step_count = gmf_lazy_adam_epoch(
            w[pu],
            w[qi],
            flat[w_lo:w_hi],
            flat[b_lo:b_hi],
            st[pu]["exp_avg"],
            st[pu]["exp_avg_sq"],
            st[qi]["exp_avg"],
            st[qi]["exp_avg_sq"],
            m[w_lo:w_hi],
            v[w_lo:w_hi],
            m[b_lo:b_hi],
            v[b_lo:b_hi],
            users,
            items,
            labels,
            cfg.batch_size,
            cfg.learning_rate,
            BETAS[0],
            BETAS[1],
            EPS,
            cfg.regularization,
            self.step_count,
            *slots,
        )
        return float(total) / max(1, len(users))

    def _adam_hyper(self) -> dict[str, Any]:
        """Adam's settings for this step (row and dense updates alike)."""
        return {
            "lr": self.cfg.learning_rate,
            "betas": BETAS,
            "eps": EPS,
            "weight_decay": self.cfg.regularization,
            "step": self.step_count,
        }

    def _update_rows(self, name: str, rows: Any, g: Any) -> None:
        cfg = self.cfg
        if cfg.sgd:
            self.steps.sgd(
                self.params[name], rows, g, lr=cfg.learning_rate, weight_decay=cfg.regularization
            )
        else:
            st = self.state[name]
            self.steps.adam(
                self.params[name],
                st["exp_avg"],
                st["exp_avg_sq"],
                rows,
                g,
                **self._adam_hyper(),
            )

    def _update_table(self, name: str, grad: Any) -> None:
        """Dense update of a whole table from its full-size gradient."""
        cfg = self.cfg
        p = self.params[name]
        if cfg.sgd:
            p.mul_(1.0 - cfg.learning_rate * cfg.regularization).sub_(grad, alpha=cfg.learning_rate)
        else:
            st = self.state[name]
            self.steps.dense_adam(
                p,
                st["exp_avg"],
                st["exp_avg_sq"],
                grad,
                **self._adam_hyper(),
            )

    def _update_dense(self) -> None:
        """Update the flat dense buffer: L2 on the weights [0, n_decayed), none on biases."""
        cfg = self.cfg
        lr, wd, cut = cfg.learning_rate, cfg.regularization, self.n_decayed
        p, g = self.flat, self.grad_flat
        if cfg.sgd:
            if wd:
                p[:cut].mul_(1.0 - lr * wd)
            p.sub_(g, alpha=lr)
            return
        m, v = self.state["dense"]["exp_avg"], self.state["dense"]["exp_avg_sq"]
        for lo, hi, decay in ((0, cut, wd), (cut, len(p), 0.0)):
            if hi > lo:
                self.steps.dense_adam(
                    p[lo:hi],
                    m[lo:hi],
                    v[lo:hi],
                    g[lo:hi],
                    lr=lr,
                    betas=BETAS,
                    eps=EPS,
                    weight_decay=decay,
                    step=self.step_count,
                )

    def sync_weights(self) -> None:
        """Copy device parameters back into the NumPy weights (a no-op on the CPU)."""
        if self.device.type != "cpu":
            for name, p in self.params.items():
                self.weights[name][...] = p.cpu().numpy()

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Optimizer state as ``adam.NAME.MOMENT`` arrays (for an exact resume)."""
        out: dict[str, np.ndarray] = {}
        step = np.array(float(self.step_count), dtype=np.float32)
        for name, st in self.state.items():
            if name == "dense":
                continue
            for key, value in st.items():
                out[f"adam.{name}.{key}"] = value.cpu().numpy().copy()
            out[f"adam.{name}.step"] = step
        if "dense" in self.state:
            m, v = (self.state["dense"][k].cpu().numpy() for k in ("exp_avg", "exp_avg_sq"))
            for name, (lo, hi) in self.slices.items():
                shape = self.weights[name].shape
                out[f"adam.{name}.exp_avg"] = m[lo:hi].reshape(shape).copy()
                out[f"adam.{name}.exp_avg_sq"] = v[lo:hi].reshape(shape).copy()
                out[f"adam.{name}.step"] = step
        return out

"""The NCF training step: hand-derived gradients, each optimizer's update, devices, precision."""

from __future__ import annotations

import numpy as np
import pytest

from dotrec.errors import ConfigError
from dotrec.machine import machine_label
from dotrec.models import GMF, MLP, NeuMF
from dotrec.models._ncf_train import BETAS, EPS, StepConfig, Trainer, forward_backward
from dotrec.models._row_optim import NumbaRows, TorchRows
from dotrec.models.ncf import _forward
from tests.conftest import planted_split, require

torch = require("torch")

KW = {"factor": 4, "batch_size": 8, "learning_rate": 0.01, "threads": 1}
USERS = [0, 0, 3, 5, 0, 2]  # repeated rows must accumulate
ITEMS = [1, 2, 2, 2, 7, 1]
LABELS = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]


def initial(cls: type, **kw: object) -> tuple[object, dict[str, np.ndarray]]:
    split = planted_split()
    m = cls(epochs=0, **{**KW, **kw}).fit(split.train)
    rng = np.random.default_rng(0)
    # Larger than the N(0, 0.01) start so that every gradient is well away from zero.
    weights = {
        n: (w + rng.normal(0, 0.3, w.shape)).astype(np.float32) for n, w in m.weights.items()
    }
    return m, weights


def tower(w: dict[str, object], n_hidden: int, dtype: object = None) -> list[tuple[object, object]]:
    return [
        (
            w[f"mlp.{i}.weight"].to(dtype or torch.float32),
            w[f"mlp.{i}.bias"].to(dtype or torch.float32),
        )
        for i in range(n_hidden)
    ]


def batch() -> tuple[object, object, object]:
    return torch.tensor(USERS), torch.tensor(ITEMS), torch.tensor(LABELS)


@pytest.mark.parametrize("cls", [GMF, MLP, NeuMF])
def test_hand_derived_gradients_equal_autograd(cls: type) -> None:
    m, weights = initial(cls)
    u, i, y = batch()
    ref = {n: torch.from_numpy(w.copy()).requires_grad_(True) for n, w in weights.items()}
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        _forward(torch, ref, u, i, len(m.layers)), y
    )
    loss.backward()
    w = {n: torch.from_numpy(a.copy()) for n, a in weights.items()}
    total, emb, dense = forward_backward(torch, w, u, i, y, tower(w, len(m.layers)))
    assert float(total) == pytest.approx(loss.item() * len(USERS), rel=1e-6)
    for name, g in dense.items():
        np.testing.assert_allclose(
            g.numpy(), ref[name].grad.numpy(), rtol=1e-5, atol=1e-7, err_msg=name
        )
    assert set(dense) | set(emb) == set(weights)
    for name, g in emb.items():
        rows = u if name.endswith("user_embedding") else i
        scattered = torch.zeros_like(w[name]).index_add_(0, rows, g)
        np.testing.assert_allclose(
            scattered.numpy(), ref[name].grad.numpy(), rtol=1e-5, atol=1e-7, err_msg=name
        )


@pytest.mark.parametrize("cls", [MLP, NeuMF])
def test_bf16_gradients_are_close_to_float32(cls: type) -> None:
    m, weights = initial(cls)
    u, i, y = batch()
    w = {n: torch.from_numpy(a) for n, a in weights.items()}
    loss32, emb32, dense32 = forward_backward(torch, w, u, i, y, tower(w, len(m.layers)))
    loss16, emb16, dense16 = forward_backward(
        torch, w, u, i, y, tower(w, len(m.layers), torch.bfloat16)
    )
    assert float(loss16) == pytest.approx(float(loss32), rel=0.02)
    # bfloat16 keeps 8 significant bits: each gradient within a few % of its scale.
    for name, g in {**dense32, **emb32}.items():
        g16 = {**dense16, **emb16}[name].float()
        scale = float(g.abs().max())
        np.testing.assert_allclose(g16.numpy(), g.numpy(), atol=0.05 * scale, err_msg=name)


def hand_adam(
    theta: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, step: int, lr: float, wd: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adam (Kingma and Ba, with PyTorch's L2 weight decay) in float64, one step."""
    g = g + wd * theta
    m = BETAS[0] * m + (1 - BETAS[0]) * g
    v = BETAS[1] * v + (1 - BETAS[1]) * g * g
    mhat, vhat = m / (1 - BETAS[0] ** step), v / (1 - BETAS[1] ** step)
    return theta - lr * mhat / (np.sqrt(vhat) + EPS), m, v


@pytest.mark.parametrize("impl", ["numba", "torch"])
def test_lazy_adam_moves_only_touched_rows_by_the_hand_computed_update(impl: str) -> None:
    rng = np.random.default_rng(1)
    table = rng.normal(size=(6, 3)).astype(np.float32)
    m0 = rng.normal(0, 0.1, size=(6, 3)).astype(np.float32)
    v0 = rng.uniform(0, 0.1, size=(6, 3)).astype(np.float32)
    rows = np.array([4, 1, 4, 0])
    grads = rng.normal(size=(4, 3)).astype(np.float32)
    step, lr, wd = 7, 0.05, 0.1
    coalesced = np.zeros((6, 3))
    np.add.at(coalesced, rows, grads.astype(np.float64))
    expected_t, expected_m, expected_v = (
        table.astype(np.float64),
        m0.astype(np.float64),
        v0.astype(np.float64),
    )
    for r in (0, 1, 4):
        expected_t[r], expected_m[r], expected_v[r] = hand_adam(
            table[r].astype(np.float64),
            coalesced[r],
            m0[r].astype(np.float64),
            v0[r].astype(np.float64),
            step,
            lr,
            wd,
        )
    t, m, v = (torch.from_numpy(a.copy()) for a in (table, m0, v0))
    opt = NumbaRows(6, 3, 4) if impl == "numba" else TorchRows(torch)
    opt.adam(
        t,
        m,
        v,
        torch.from_numpy(rows),
        torch.from_numpy(grads),
        lr=lr,
        betas=BETAS,
        eps=EPS,
        weight_decay=wd,
        step=step,
    )
    np.testing.assert_allclose(t.numpy(), expected_t, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.numpy(), expected_m, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v.numpy(), expected_v, rtol=1e-5, atol=1e-7)
    untouched = [2, 3, 5]
    np.testing.assert_array_equal(t.numpy()[untouched], table[untouched])
    np.testing.assert_array_equal(m.numpy()[untouched], m0[untouched])


@pytest.mark.parametrize("impl", ["numba", "torch"])
def test_dense_adam_and_row_sgd_match_the_hand_computed_update(impl: str) -> None:
    rng = np.random.default_rng(2)
    theta = rng.normal(size=(3, 5)).astype(np.float32)
    g = rng.normal(size=(3, 5)).astype(np.float32)
    zeros = np.zeros_like(theta)
    opt = NumbaRows(3, 5, 4) if impl == "numba" else TorchRows(torch)
    t, m, v = (torch.from_numpy(a.copy()) for a in (theta, zeros, zeros))
    opt.dense_adam(
        t, m, v, torch.from_numpy(g), lr=0.01, betas=BETAS, eps=EPS, weight_decay=0.2, step=1
    )
    expected, _, _ = hand_adam(theta.astype(np.float64), g, 0.0, 0.0, 1, 0.01, 0.2)
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-5, atol=1e-6)
    # Row SGD: theta_r -= lr * (sum of the row's gradients + wd * theta_r), others untouched.
    t = torch.from_numpy(theta.copy())
    rows = np.array([2, 0, 2])
    opt.sgd(t, torch.from_numpy(rows), torch.from_numpy(g), lr=0.1, weight_decay=0.5)
    expected = theta.astype(np.float64).copy()
    for r, grad in ((0, g[1]), (2, g[0] + g[2])):
        expected[r] = theta[r] - 0.1 * (grad + 0.5 * theta[r])
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["adam", "lazy_adam"])
def test_trainer_step_equals_torch_adam_on_autograd_gradients(optimizer: str) -> None:
    """One step of each optimizer on NeuMF against torch.optim.Adam on autograd gradients."""
    m, weights = initial(NeuMF, regularization=0.01)
    u, i, y = batch()
    ref = {n: torch.from_numpy(w.copy()).requires_grad_(True) for n, w in weights.items()}
    decayed = [p for n, p in ref.items() if not n.endswith("bias")]
    opt = torch.optim.Adam(
        [
            {"params": decayed, "weight_decay": 0.01},
            {"params": [p for n, p in ref.items() if n.endswith("bias")]},
        ],
        lr=0.01,
    )
    torch.nn.functional.binary_cross_entropy_with_logits(
        _forward(torch, ref, u, i, len(m.layers)), y
    ).backward()
    touched = {"user": sorted(set(USERS)), "item": sorted(set(ITEMS))}
    opt.step()
    cfg = StepConfig(
        optimizer=optimizer,
        sgd=False,
        learning_rate=0.01,
        regularization=0.01,
        batch_size=8,
        n_hidden=len(m.layers),
        precision="fp32",
    )
    w = {n: a.copy() for n, a in weights.items()}
    Trainer(torch, w, cfg, "cpu", {}).epoch(
        np.array(USERS), np.array(ITEMS), np.array(LABELS, dtype=np.float32)
    )
    for name, p in ref.items():
        expected = p.detach().numpy()
        if optimizer == "lazy_adam" and name.endswith("embedding"):
            side = touched["user" if "user" in name else "item"]
            untouched = np.setdiff1d(np.arange(len(expected)), side)
            # Dense Adam moves untouched rows by their weight decay; lazy Adam leaves them.
            np.testing.assert_array_equal(w[name][untouched], weights[name][untouched])
            expected, got = expected[side], w[name][side]
        else:
            got = w[name]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=name)


def test_gmf_compiled_epoch_equals_the_torch_step() -> None:
    split = planted_split()
    m = GMF(epochs=0, **KW).fit(split.train)
    rng = np.random.default_rng(3)
    users = rng.integers(0, split.n_users, 50)
    items = rng.integers(0, split.n_items, 50)
    labels = (rng.random(50) < 0.3).astype(np.float32)
    cfg = StepConfig(
        optimizer="lazy_adam",
        sgd=False,
        learning_rate=0.01,
        regularization=0.001,
        batch_size=8,
        n_hidden=0,
        precision="fp32",
    )
    fast_w = {n: a.copy() for n, a in m.weights.items()}
    slow_w = {n: a.copy() for n, a in m.weights.items()}
    fast = Trainer(torch, fast_w, cfg, "cpu", {})
    slow = Trainer(torch, slow_w, cfg, "cpu", {})
    slow.gmf_kernel = False
    assert fast.gmf_kernel
    for _ in range(2):
        loss_fast, loss_slow = (t.epoch(users, items, labels) for t in (fast, slow))
        assert loss_fast == pytest.approx(loss_slow, rel=1e-5)
    assert fast.step_count == slow.step_count == 14  # 7 batches per epoch (the last of 2)
    for name in m.weights:
        np.testing.assert_allclose(fast_w[name], slow_w[name], rtol=1e-4, atol=1e-6, err_msg=name)
        assert not np.array_equal(fast_w[name], m.weights[name]), name


@pytest.mark.parametrize("cls", [GMF, MLP, NeuMF])
def test_lazy_adam_learns_like_adam(cls: type) -> None:
    split = planted_split()
    kw = {**KW, "factor": 8, "batch_size": 64, "epochs": 4, "seed": 1}
    dense = cls(**kw).fit(split.train)
    lazy = cls(optimizer="lazy_adam", **kw).fit(split.train)
    # With 4 negatives per positive the best constant predictor (0.2) has loss H(0.2) = 0.500;
    # dense Adam reaches 0.30 (MLP) here, lazy Adam, whose untouched rows wait, 0.38.
    base = -(0.2 * np.log(0.2) + 0.8 * np.log(0.8))
    assert dense.fit_info["loss"] < 0.9 * base
    assert lazy.fit_info["loss"] < 0.9 * base


def test_device_and_precision_options() -> None:
    split = planted_split()
    kw = {**KW, "factor": 8, "batch_size": 64, "epochs": 4, "seed": 2}
    cpu = MLP(**kw).fit(split.train)
    auto = MLP(device="auto" if not torch.cuda.is_available() else "cpu", **kw).fit(split.train)
    for name, w in cpu.weights.items():
        np.testing.assert_array_equal(auto.weights[name], w, err_msg=name)
    assert cpu.fit_info["device"] == "cpu"
    bf16 = MLP(precision="bf16", **kw).fit(split.train)
    base = -(0.2 * np.log(0.2) + 0.8 * np.log(0.8))
    assert bf16.fit_info["loss"] < 0.9 * base and cpu.fit_info["loss"] < 0.9 * base
    with pytest.raises(ConfigError, match="optimizer must be"):
        GMF(optimizer="sgd")
    with pytest.raises(ConfigError, match="precision must be"):
        GMF(precision="fp16")
    with pytest.raises(ConfigError, match="device must be"):
        GMF(device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            GMF(device="cuda").fit(split.train)


@pytest.mark.gpu
@pytest.mark.parametrize("optimizer", ["adam", "lazy_adam"])
def test_cuda_training_agrees_with_cpu(optimizer: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to torch")
    split = planted_split()
    kw = {**KW, "factor": 8, "epochs": 3, "seed": 4, "optimizer": optimizer}
    for cls in (GMF, MLP, NeuMF):
        cpu = cls(**kw).fit(split.train)
        gpu = cls(device="cuda", **kw).fit(split.train)
        assert gpu.fit_info["device"] == "cuda"
        # A study records this fit as run on the GPU, named as torch names it.
        assert machine_label(gpu.fit_info["device"]).startswith(torch.cuda.get_device_name())
        # Same seed: same examples; float sums differ in order (atomics), so close, not equal.
        assert gpu.fit_info["loss"] == pytest.approx(cpu.fit_info["loss"], rel=1e-3)
        u = np.arange(split.n_users)
        np.testing.assert_allclose(
            gpu.score(u, u % split.n_items), cpu.score(u, u % split.n_items), atol=1e-3
        )

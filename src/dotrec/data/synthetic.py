"""A deterministic synthetic interaction generator: the built-in default data.

Ground truth: user and item vectors ``u, v ~ N(0, I/d)``, a long-tail item popularity term
``b_i = -popularity * log(rank_i + 1)`` (ranks a seeded permutation, so popularity is Zipf-like),
and a similarity that is either the dot product ``<u, v>`` or a random two-layer ReLU MLP of the
concatenation ``[u, v]`` (rescaled to the dot product's spread). Each user draws
``1 + Poisson(interactions_per_user - 1)`` distinct items with probability proportional to
``exp((sim(u, i) + b_i) / temperature)`` (Gumbel top-k sampling), in a random time order.

With ``similarity="mlp"`` a learned similarity has something to learn that a dot product cannot
represent exactly; with ``"dot"`` the dot product is the true model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dotrec.data.interactions import Interactions
from dotrec.errors import ConfigError
from dotrec.random import rng


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of :func:`generate`."""

    n_users: int = 2000
    n_items: int = 1000
    dim: int = 16
    interactions_per_user: float = 30.0
    popularity: float = 0.5
    temperature: float = 0.25
    similarity: str = "dot"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.similarity not in ("dot", "mlp"):
            raise ConfigError(f"similarity must be 'dot' or 'mlp', got {self.similarity!r}")
        if min(self.n_users, self.n_items, self.dim) < 1:
            raise ConfigError("n_users, n_items and dim must be >= 1")
        if not 1 <= self.interactions_per_user < self.n_items:
            raise ConfigError("interactions_per_user must be in [1, n_items)")
        if self.temperature <= 0 or self.popularity < 0:
            raise ConfigError("temperature must be > 0 and popularity >= 0")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _mlp_similarity(r: np.random.Generator, U: np.ndarray, V: np.ndarray) -> np.ndarray:
    d = U.shape[1]
    h = 4 * d
    w_u = r.standard_normal((d, h)) / np.sqrt(2 * d)
    w_v = r.standard_normal((d, h)) / np.sqrt(2 * d)
    b1 = r.standard_normal(h) * 0.1
    w2 = r.standard_normal(h) / np.sqrt(h)
    # First layer split into its user and item halves so the (users x items x h) tensor is
    # built one user block at a time.
    a_u, a_v = U @ w_u, V @ w_v + b1
    out = np.empty((len(U), len(V)))
    for s in range(0, len(U), 256):
        hid = np.maximum(a_u[s : s + 256, None, :] + a_v[None, :, :], 0.0)
        out[s : s + 256] = hid @ w2
    out -= out.mean()
    return out / (out.std() + 1e-12) * (1.0 / np.sqrt(d))


def generate(config: SyntheticConfig | None = None) -> Interactions:
    """Draw a synthetic :class:`Interactions` (with timestamps) from ``config``."""
    c = config or SyntheticConfig()
    r = rng(c.seed, "synthetic")
    U = r.standard_normal((c.n_users, c.dim)) / np.sqrt(np.sqrt(c.dim))
    V = r.standard_normal((c.n_items, c.dim)) / np.sqrt(np.sqrt(c.dim))
    pop_rank = r.permutation(c.n_items)
    bias = -c.popularity * np.log1p(pop_rank)
    counts = np.minimum(1 + r.poisson(c.interactions_per_user - 1, size=c.n_users), c.n_items - 1)
    sim = U @ V.T if c.similarity == "dot" else _mlp_similarity(r, U, V)
    logits = (sim + bias[None, :]) / c.temperature
    gumbel = r.gumbel(size=logits.shape)
    keys = logits + gumbel
    order = np.argsort(-keys, axis=1, kind="stable")
    users = np.repeat(np.arange(c.n_users), counts)
    rank_in_user = np.arange(len(users)) - np.repeat(np.cumsum(counts) - counts, counts)
    items = order[users, rank_in_user]
    # A random time order inside each user: distinct timestamps, so leave-one-out is exact.
    times = r.permutation(len(users)).astype(np.int64)
    return Interactions.from_indices(
        users,
        items,
        n_users=c.n_users,
        n_items=c.n_items,
        timestamps=times,
        source=f"synthetic({c.similarity})",
    )

"""A real normalisation toy: a linear layer followed by a normalisation, trained with minibatches.

Scale invariance here comes from the layer, not by construction. Per replica ``r`` the model is

    h = x Wᵣᵀ  (B × out),   z = norm(h),   ŷ = z a,   loss = (1/2B) Σ_b (ŷ_b − y_b)²

with a fixed readout ``a`` (so W is the only trained weight) and

- ``norm="batch"``: BatchNorm in training mode without affine, per output unit over the batch,
  z = (h − mean_b h)/sqrt(var_b h + eps) (biased variance, as ``torch.nn.BatchNorm1d``): each ROW
  of W (one output unit) is scale-invariant, so AdamP's channel view applies;
- ``norm="layer"``: LayerNorm without affine over the ``out`` units of each example: the whole W
  is scale-invariant (layer view).

With ``eps = 0`` the loss is exactly invariant (f(cW) = f(W)), so ⟨W, ∇f⟩ = 0 per row (batch) or
per tensor (layer) and ∇f(cW) = ∇f(W)/c hold to round-off; torch's default eps = 1e-5 breaks
them by O(eps/var h) — the amount real networks see. Data: x ~ N(0, I) (``n_data`` examples,
shared by the replicas), targets from a teacher of the same architecture plus Gaussian noise.
Each replica draws its own minibatch every step (indices ``(R, B)``); the forward pass is one
batched matmul over replicas and the gradient is autograd of Σ_r loss_r, which is the per-replica
gradient because replicas share no parameter.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .replica_toy import ReplicaToy

NORMS = ("batch", "layer")


class NormalizedLinearToy(ReplicaToy):
    """``replicas`` students W of shape ``(out_dim, in_dim)`` in one ``(R, out, in)`` tensor."""

    def __init__(self, in_dim: int = 16, out_dim: int = 8, replicas: int = 64, batch: int = 32,
                 n_data: int = 1024, norm: str = "batch", eps: float = 0.0,
                 label_noise: float = 0.1, seed: int = 0, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu"):
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}: expected one of {NORMS}")
        if batch < 2 or batch > n_data:
            raise ValueError(f"batch must lie in [2, n_data={n_data}] (batch statistics need two "
                             f"examples); got batch={batch}")
        if norm == "layer" and out_dim < 2:
            raise ValueError(f"LayerNorm needs out_dim >= 2; got out_dim={out_dim}")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        super().__init__((out_dim, in_dim), replicas, seed, dtype, device)
        self.norm, self.eps, self.batch, self.n_data = norm, float(eps), int(batch), int(n_data)
        self.x = self.randn(n_data, in_dim)
        self.readout = self.randn(out_dim) / math.sqrt(out_dim)
        teacher = self.randn(1, out_dim, in_dim)
        with torch.no_grad():
            clean = self._predict(teacher, self.x.unsqueeze(0))[0]
        self.y = clean + label_noise * self.randn(n_data)
        self.w.copy_(self.randn(replicas, out_dim, in_dim) / math.sqrt(in_dim))

    # --- model ---------------------------------------------------------------------------------
    def normalise(self, h: Tensor) -> Tensor:
        """BatchNorm (over axis −2, the batch) or LayerNorm (over axis −1, the units)."""
        dim = -2 if self.norm == "batch" else -1
        mu = h.mean(dim=dim, keepdim=True)
        var = ((h - mu) ** 2).mean(dim=dim, keepdim=True)
        return (h - mu) / torch.sqrt(var + self.eps)

    def _predict(self, w: Tensor, xb: Tensor) -> Tensor:
        """ŷ for inputs ``xb`` of shape (R, B, in) and weights ``w`` (R, out, in): (R, B)."""
        h = torch.matmul(xb, w.transpose(-1, -2))
        return self.normalise(h) @ self.readout

    def draw_noise(self) -> Tensor:
        """A minibatch: indices (R, B), each replica sampling ``batch`` examples with replacement."""
        return torch.randint(self.n_data, (self.replicas, self.batch), generator=self.gen,
                             device=self.device)

    def loss(self, w: Tensor, noise: Tensor | None = None) -> Tensor:
        """Per-replica minibatch loss (full data when ``noise`` is None: BatchNorm then uses the
        statistics of all ``n_data`` examples)."""
        if noise is None:
            xb, yb = self.x.expand(w.shape[0], -1, -1), self.y.expand(w.shape[0], -1)
        else:
            xb, yb = self.x[noise], self.y[noise]
        return 0.5 * ((self._predict(w, xb) - yb) ** 2).mean(-1)

    def gradient(self, w: Tensor, noise: Tensor | None = None) -> Tensor:
        with torch.enable_grad():
            leaf = w.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.loss(leaf, noise).sum(), leaf)
        return g

    def invariant_rows(self, x: Tensor) -> Tensor:
        """The blocks that are scale-invariant, one per row of the result: (R·out, in) for
        BatchNorm (each output unit), (R, out·in) for LayerNorm (the whole weight)."""
        return x.reshape(-1, x.shape[-1]) if self.norm == "batch" else x.reshape(x.shape[0], -1)

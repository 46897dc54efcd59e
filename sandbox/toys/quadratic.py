r"""A noisy quadratic whose gradient noise has covariance H/B (batched over replicas).

Model: the loss is the mean over a minibatch of B per-example losses whose gradients are
g_i(θ) = Hθ + H^{1/2} ζ_i with ζ_i ~ N(0, I). The minibatch gradient is then

.. math:: g(\theta) = H\theta + \sqrt{H/B}\,\xi,\qquad \xi \sim N(0, I),\qquad
          \operatorname{Cov}[g] = H/B,

and the per-example (empirical) Fisher is E[g_i g_iᵀ] = H + Hθθᵀ H, equal to the Hessian H at
the minimum θ = 0: the "C ≈ H/B near a minimum" model of the escape-time theory (Zhu et al.,
ICML 2019; Xie, Sato & Sugiyama, ICLR 2021) and the reason root-free methods precondition with
B·v ≈ B·E[g²] ≈ diag H (Lin et al., ICML 2024). Root-free's preconditioner should therefore tend to
diag(H) here, i.e. its step to a diagonal Newton step (theory §6).

H = Q diag(h) Qᵀ with curvatures ``h`` (default geomspace(1, ``condition``, d)) and Q = I
(``rotate=False``, the diagonal case) or a random rotation. The expected loss (up to the noise
constant) is f(θ) = ½ θᵀHθ.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .replica_toy import ReplicaToy


class NoisyQuadratic(ReplicaToy):
    """``replicas`` points θ ∈ R^d in one ``(R, d)`` tensor, started at ``theta0`` (a scalar: every
    coordinate equal to it; or a tensor broadcastable to (R, d)), default 1."""

    def __init__(self, d: int = 8, replicas: int = 64, batch_size: int = 1,
                 condition: float = 100.0, curvatures=None, rotate: bool = False,
                 theta0=1.0, seed: int = 0, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu"):
        super().__init__((d,), replicas, seed, dtype, device)
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        h = (torch.logspace(0.0, math.log10(condition), d, dtype=dtype) if curvatures is None
             else torch.as_tensor(curvatures, dtype=dtype))
        if h.shape != (d,) or bool((h <= 0).any()):
            raise ValueError(f"curvatures must be {d} positive numbers; got {h.tolist()}")
        self.batch_size = batch_size
        self.curvatures = h.to(self.device)
        if rotate:
            q, _ = torch.linalg.qr(torch.randn(d, d, dtype=dtype,
                                               generator=torch.Generator().manual_seed(seed + 1)))
            self.rotation = q.to(self.device)
        else:
            self.rotation = None
        self.w.copy_(torch.as_tensor(theta0, dtype=dtype, device=self.device).expand(replicas, d))

    @property
    def hessian(self) -> Tensor:
        """H (d × d)."""
        if self.rotation is None:
            return torch.diag(self.curvatures)
        return (self.rotation * self.curvatures) @ self.rotation.T

    @property
    def fisher_diagonal(self) -> Tensor:
        """diag of the per-example Fisher at the minimum, = diag(H) (length d)."""
        return torch.diagonal(self.hessian).clone()

    def _apply(self, x: Tensor, power: float) -> Tensor:
        """x ↦ H^power x, row-wise."""
        hp = self.curvatures ** power
        if self.rotation is None:
            return x * hp
        return ((x @ self.rotation) * hp) @ self.rotation.T

    def loss(self, w: Tensor) -> Tensor:
        """Expected loss ½ θᵀHθ per replica (the noise constant left out)."""
        return 0.5 * (w * self._apply(w, 1.0)).sum(-1)

    def draw_noise(self) -> Tensor:
        return self.randn(*self.w.shape)

    def gradient(self, w: Tensor, noise: Tensor | None = None) -> Tensor:
        g = self._apply(w, 1.0)
        if noise is None:
            return g
        return g + self._apply(noise, 0.5) / self.batch_size ** 0.5

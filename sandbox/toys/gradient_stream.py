"""Random linear losses f_t(w) = ⟨ξ_t, w⟩: a gradient stream that does not depend on w.

The gradient at step t is ξ_t (i.i.d. N(0, σ²I) per replica), whatever w is. Two runs that feed a
rule transformed versions of the same stream (ξ → c·ξ, ξ → D ⊙ ξ: see
:class:`~sandbox.toys.Reparametrised`) keep seeing exactly transformed gradients even when their
trajectories differ, so the ratio of their updates isolates the RULE's homogeneity (its state
included) from the problem's feedback: the cleanest test of "the update scales as c^k".
"""
from __future__ import annotations

import torch
from torch import Tensor

from .replica_toy import ReplicaToy


class GradientStream(ReplicaToy):
    """``replicas`` weights of item shape ``shape`` receiving gradients ξ_t ~ N(0, σ²I)."""

    def __init__(self, shape=(8,), replicas: int = 16, sigma: float = 1.0, seed: int = 0,
                 dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"):
        super().__init__(shape, replicas, seed, dtype, device)
        self.sigma = float(sigma)
        self.w.copy_(self.random_directions(1.0))

    def draw_noise(self) -> Tensor:
        return self.sigma * self.randn(*self.w.shape)

    def gradient(self, w: Tensor, noise: Tensor | None = None) -> Tensor:
        if noise is None:
            return torch.zeros_like(w)
        return noise.reshape(w.shape)

    def loss(self, w: Tensor, noise: Tensor) -> Tensor:
        return (self.flat(w) * self.flat(noise)).sum(-1)

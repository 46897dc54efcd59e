"""Deterministic scale-invariant losses: f(cw) = f(w) for every c > 0, batched over replicas.

For such a loss (Heo et al., ICLR 2021, §2; Arora, Li & Lyu, ICLR 2019) differentiating
f(cw) = f(w) gives the two exact identities that every toy here satisfies to round-off:

- orthogonality, ⟨w, ∇f(w)⟩ = 0 (d/dc f(cw) at c = 1),
- inverse scaling, ∇f(cw) = ∇f(w)/c (chain rule on f(cw) = f(w)).

Both toys accept optional tangential noise ``sigma`` (σ Π⊥(ξ)/‖w‖, ξ ~ N(0, I)), which keeps both
identities true for each noise draw.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .replica_toy import ReplicaToy


def _hat(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def _perp(x: Tensor, w_hat: Tensor) -> Tensor:
    """Π⊥(x) = x − ŵ⟨ŵ, x⟩ (rows)."""
    return x - w_hat * (w_hat * x).sum(dim=-1, keepdim=True)


class _SphereToy(ReplicaToy):
    def __init__(self, shape, replicas, r0, sigma, seed, dtype, device):
        super().__init__(shape, replicas, seed, dtype, device)
        self.sigma = float(sigma)
        self.w.copy_(self.random_directions(r0))

    def draw_noise(self):
        return self.randn(self.replicas, self.d) if self.sigma > 0 else None

    def _add_noise(self, g: Tensor, w: Tensor, noise) -> Tensor:
        if noise is None or self.sigma == 0:
            return g
        r = w.norm(dim=-1, keepdim=True)
        return g + self.sigma * _perp(noise, w / r) / r


class RayleighQuotientToy(_SphereToy):
    r"""Minimise the Rayleigh quotient f(w) = ⟨w, Aw⟩/⟨w, w⟩ on the sphere (per replica).

    A = Q diag(λ) Qᵀ is a fixed symmetric d×d matrix (shared by all replicas; Q random orthogonal
    from ``seed``, λ = ``eigenvalues``, default linspace(1, ``condition``, d)). The minimum value is
    λ_min, reached at ±(its eigenvector) (``minimiser``). Gradient, exactly tangential and of
    degree −1 in w:

    .. math:: \nabla f(w) = \frac{2}{\lVert w\rVert^2}\,(A w - f(w)\, w)

    GD on it is a power-iteration-like eigen-solver whose effective step is η·2‖…‖/‖w‖²: the
    norm growth r_{t+1}² = r_t² + η²‖g_t‖² slows it down, which is the point of the toy.
    """

    def __init__(self, d: int, replicas: int, condition: float = 10.0, eigenvalues=None,
                 shape=None, r0: float = 1.0, sigma: float = 0.0, seed: int = 0,
                 dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"):
        super().__init__(shape or (d,), replicas, r0, sigma, seed, dtype, device)
        if self.d != d:
            raise ValueError(f"shape {shape} holds {self.d} elements, not d={d}")
        lam = (torch.linspace(1.0, float(condition), d, dtype=dtype) if eigenvalues is None
               else torch.as_tensor(eigenvalues, dtype=dtype))
        if lam.shape != (d,):
            raise ValueError(f"eigenvalues must have length d={d}, got shape {tuple(lam.shape)}")
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed + 1),
                                           dtype=dtype))
        self.eigenvalues = lam.to(self.device)
        self.eigenvectors = q.to(self.device)  # columns
        self.A = (q * lam) @ q.T
        self.A = self.A.to(self.device)

    def loss(self, w: Tensor) -> Tensor:
        x = self.flat(w)
        return (x * (x @ self.A)).sum(-1) / (x * x).sum(-1)

    def gradient(self, w: Tensor, noise=None) -> Tensor:
        x = self.flat(w)
        r2 = (x * x).sum(-1, keepdim=True)
        ax = x @ self.A
        f = (x * ax).sum(-1, keepdim=True) / r2
        return self.unflat(self._add_noise(2.0 * (ax - f * x) / r2, x, noise))

    @property
    def minimiser(self) -> Tensor:
        """Unit eigenvector of the smallest eigenvalue (the minimum, up to sign)."""
        return self.eigenvectors[:, int(torch.argmin(self.eigenvalues))]


class CosineToy(_SphereToy):
    r"""The AdamP paper's toy (Heo et al., ICLR 2021, §3): minimise f(w) = −⟨ŵ, ŵ*⟩, default 2-D.

    .. math:: \nabla f(w) = -\frac{1}{\lVert w\rVert}\,\Pi_\perp(\hat w^*),\qquad
              \Pi_\perp(x) = x - \hat w \langle \hat w, x\rangle

    so the gradient shrinks like 1/‖w‖ as momentum inflates the norm: the "slowdown" the paper's
    projection removes. The target ŵ* (``target``, default a random unit vector from ``seed``)
    is shared by all replicas; the starting points are random of radius ``r0``.
    """

    def __init__(self, d: int = 2, replicas: int = 1, target=None, shape=None, r0: float = 1.0,
                 sigma: float = 0.0, seed: int = 0, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu"):
        super().__init__(shape or (d,), replicas, r0, sigma, seed, dtype, device)
        if target is None:
            target = torch.randn(self.d, generator=torch.Generator().manual_seed(seed + 1),
                                 dtype=dtype)
        target = torch.as_tensor(target, dtype=dtype).reshape(-1)
        if target.numel() != self.d or float(target.norm()) == 0:
            raise ValueError(f"target must be a non-zero vector of {self.d} elements")
        self.target = (target / target.norm()).to(self.device)

    def loss(self, w: Tensor) -> Tensor:
        return -(_hat(self.flat(w)) * self.target).sum(-1)

    def gradient(self, w: Tensor, noise=None) -> Tensor:
        x = self.flat(w)
        r = x.norm(dim=-1, keepdim=True)
        g = -_perp(self.target.expand_as(x), x / r) / r
        return self.unflat(self._add_noise(g, x, noise))

    def angle_to_target(self, w: Tensor | None = None) -> Tensor:
        """Angle (radians) between each replica and ŵ*."""
        x = _hat(self.flat(self.w if w is None else w))
        return torch.arccos((x * self.target).sum(-1).clamp(-1.0, 1.0))

r"""Escape problems: a minimum whose sharpness is set by a factor k at a fixed barrier height.

**Escape coordinate** (the quartic of :func:`theory.escape.quartic_double_well`):

.. math::
    U_k(x) = \Delta L\,\big((x/a)^2 - 1\big)^2,\qquad a = \sqrt{8\,\Delta L/H_a},\qquad H_a = k\,h_0,

wells at ``x = ±a`` with curvature ``U'' = H_a``, the barrier ``ΔL`` at ``x = 0`` with curvature
``H_b = −H_a/2``. Particles start at the left minimum ``x = −a``; a particle *escapes* at the first
step after which ``x ≥ a/2`` (half way down to the right well, past the saddle: the Kramers time
"to cross the well past the saddle", :func:`theory.escape.kramers_escape_time`; the first passage
to the saddle top itself would be about half of it). The right well keeps escaped particles
bounded, so nothing overflows after the escape.

Scaling with k is a change of length unit: ``U_k(x) = U_1(√k·x)``. The barrier stays ``ΔL`` while
every curvature (H_a, H_b) is multiplied by k. Together with noise whose variance also scales
like k, this gives an exact rescaling of the dynamics (see :mod:`sandbox.escape.simulate`).

**Spectator directions** (the multi-dimensional problem): ``L(θ) = U_k(θ_0) + Σ_i h_i θ_i²/2``
with fixed curvatures ``h_i`` that do *not* scale with k. They leave SGD, heavy ball, Adam and
root-free Adam's escape coordinate untouched (those rules act element by element). Adai is
different: its inertia ``β1 = 1 − β0·v̂_0/v̄`` in the escape direction depends on the mean second
moment ``v̄`` over ALL directions (Xie et al., ICML 2022). In 1-D ``v̂/v̄ ≡ 1`` and Adai is plain
EMA momentum with ``β1 = 1 − β0``. With stiff spectators (``h_i ≫ H_a``) the escape direction has
``v̂_0 < v̄`` and a large inertia (β1 → 1 − eps); with flat ones (``h_i ≪ H_a``) ``v̂_0 > v̄`` and a
small inertia (β1 → 0). Because ``h_i`` is fixed, the inertia changes with k.

**Gradient noise** (minibatch-like, covariance ``H(θ)/B``; Xie, Sato & Sugiyama, ICLR 2021 take
``C ≈ H/B`` near critical points, the Fisher approximating the Hessian): ``g = ∇L(θ) + ξ`` with
independent Gaussian components,

- spectators: ``Var ξ_i = h_i/B`` (exactly ``H(θ)/B``: their Hessian is constant);
- escape coordinate, ``noise='minimum'`` (default): ``Var ξ_0 = H_a/B``, the Hessian at the
  minimum, on the whole path (the approximation behind the leading-order law, theory §5);
- escape coordinate, ``noise='local'``: ``Var ξ_0 = clip(|U''(x)|, floor·H_a, H_a)/B``, the local
  |Hessian| (H_a at the minimum, ``|H_b|`` at the saddle, as in Xie et al.); the floor keeps the
  noise from vanishing at the inflection points ``x = ±a/√3``, where a zero-noise point would make
  the crossing deterministic. The default floor 1/2 = |H_b|/H_a: the noise never drops below the
  saddle's. The cap H_a only acts outside the escape path (on the outer walls, |x| > a, where
  U'' grows like x²): without it a fluctuation up the outer wall meets ever larger noise and
  ηU'' > 2, and SGD diverges. The escape exponent is R·ΔL/T_a with R(1/2) ≈ 1.95
  (:func:`theory.escape_laws.quartic_local_noise_factor`).

Both noise modes scale like k, so the exact k-rescaling holds for either.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

NOISE_MODES = ("minimum", "local")


class EscapeProblem:
    """``R`` independent particles (replicas) on ``U_k(θ_0) + Σ h_i θ_i²/2``, one row each.

    ``k`` (shape ``(R,)``) and ``batch_size`` (a number or shape ``(R,)``) are per particle, so a
    whole grid of sharpness values runs as one tensor. ``barrier`` is ΔL and ``h0`` the curvature
    at k = 1. Build a grid with :meth:`grid`.

    >>> prob = EscapeProblem.grid(ks=[1, 2, 4], particles=1000, batch_size=8)
    >>> theta = prob.initial_theta()                    # (3000, 1): every particle at x = -a
    >>> theta.grad = prob.sample_gradient(theta, torch.Generator().manual_seed(0))
    """

    def __init__(self, k, batch_size, barrier: float = 0.05, h0: float = 1.0,
                 spectators: Sequence[float] = (), noise: str = "minimum", floor: float = 0.5,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        if noise not in NOISE_MODES:
            raise ValueError(f"noise={noise!r}: must be one of {NOISE_MODES}")
        if not barrier > 0 or not h0 > 0:
            raise ValueError(f"barrier={barrier!r} and h0={h0!r} must both be > 0")
        if not 0 < floor <= 1:
            raise ValueError(f"floor={floor!r}: must be in (0, 1] (a fraction of H_a)")
        if any(not h > 0 for h in spectators):
            raise ValueError(f"spectators={tuple(spectators)!r}: every curvature must be > 0")
        kw = dict(dtype=dtype, device=device)
        self.k = torch.as_tensor(k, **kw).reshape(-1)
        if not bool((self.k > 0).all()):
            raise ValueError("every sharpness factor k must be > 0")
        self.batch_size = torch.as_tensor(batch_size, **kw).expand_as(self.k).clone()
        if not bool((self.batch_size > 0).all()):
            raise ValueError("every batch_size must be > 0")
        self.barrier, self.h0, self.noise, self.floor = float(barrier), float(h0), noise, float(floor)
        self.spectators = tuple(float(h) for h in spectators)
        self.h = torch.tensor(self.spectators, **kw).reshape(1, -1)  # (1, D)
        self.H_a = self.k * self.h0
        self.a = torch.sqrt(8.0 * self.barrier / self.H_a)
        # per-particle noise standard deviations, (R, 1 + D); column 0 is recomputed for 'local'
        var = torch.cat([self.H_a[:, None], self.h.expand(self.k.numel(), -1)], dim=1)
        self.std = torch.sqrt(var / self.batch_size[:, None])

    @classmethod
    def grid(cls, ks: Sequence[float], particles: int, **kwargs) -> "EscapeProblem":
        """``particles`` replicas for each k in ``ks`` (k-major order: rows ``i·particles ...``)."""
        if particles < 1:
            raise ValueError(f"particles={particles!r}: must be >= 1")
        ks = torch.as_tensor(list(ks), dtype=torch.float64)
        return cls(ks.repeat_interleave(int(particles)), **kwargs)

    # --- geometry ----------------------------------------------------------------------------
    @property
    def replicas(self) -> int:
        return self.k.numel()

    @property
    def dims(self) -> int:
        return 1 + len(self.spectators)

    @property
    def H_b(self) -> Tensor:
        """Curvature at the barrier top, −H_a/2."""
        return -0.5 * self.H_a

    def initial_theta(self) -> Tensor:
        """Every particle at the left minimum: ``θ_0 = −a``, spectators at 0. Shape ``(R, 1+D)``."""
        theta = torch.zeros(self.replicas, self.dims, dtype=self.k.dtype, device=self.k.device)
        theta[:, 0] = -self.a
        return theta

    def escaped(self, theta: Tensor) -> Tensor:
        """Per particle: past the barrier, ``θ_0 ≥ a/2``."""
        return theta[:, 0] >= 0.5 * self.a

    # --- the potential ------------------------------------------------------------------------
    def loss(self, theta: Tensor) -> Tensor:
        """``L(θ)`` per particle."""
        y = theta[:, 0] / self.a
        out = self.barrier * (y * y - 1.0) ** 2
        if self.spectators:
            out = out + 0.5 * (self.h * theta[:, 1:] ** 2).sum(dim=1)
        return out

    def escape_gradient(self, x: Tensor) -> Tensor:
        """``U'(x) = (4ΔL/a)·y(y² − 1)``, ``y = x/a``."""
        y = x / self.a
        return (4.0 * self.barrier / self.a) * y * (y * y - 1.0)

    def escape_curvature(self, x: Tensor) -> Tensor:
        """``U''(x) = (4ΔL/a²)(3y² − 1)``: H_a at the wells, −H_a/2 at the barrier."""
        y = x / self.a
        return (4.0 * self.barrier / self.a**2) * (3.0 * y * y - 1.0)

    def gradient(self, theta: Tensor) -> Tensor:
        """The exact gradient ∇L(θ), shape ``(R, 1+D)``."""
        g = torch.empty_like(theta)
        g[:, 0] = self.escape_gradient(theta[:, 0])
        g[:, 1:] = theta[:, 1:] * self.h
        return g

    def noise_std(self, theta: Tensor) -> Tensor:
        """Per-component noise standard deviation ``sqrt(diag C(θ)/B)``, shape ``(R, 1+D)``."""
        if self.noise == "minimum":
            return self.std
        std = self.std.clone()
        curv = self.escape_curvature(theta[:, 0]).abs().maximum(self.floor * self.H_a) \
            .minimum(self.H_a)
        std[:, 0] = torch.sqrt(curv / self.batch_size)
        return std

    def sample_gradient(self, theta: Tensor, generator: torch.Generator) -> Tensor:
        """A minibatch-like gradient ``∇L(θ) + ξ``, ``ξ ~ N(0, C(θ)/B)`` (independent components)."""
        xi = torch.randn(theta.shape, generator=generator, dtype=theta.dtype, device=theta.device)
        g = xi.mul_(self.noise_std(theta))
        g[:, 0] += self.escape_gradient(theta[:, 0])
        if self.spectators:
            g[:, 1:] += theta[:, 1:] * self.h
        return g

    def describe(self) -> dict:
        """The problem's settings as flat labels for result tables."""
        return {"barrier": self.barrier, "h0": self.h0, "noise": self.noise,
                "dims": self.dims, "spectators": ",".join(f"{h:g}" for h in self.spectators)}

"""The noise-driven scale-invariant toy (notation as in docs/theory.md).

Each replica holds a weight w ∈ R^d and receives the gradient g = Π⊥(ξ)/‖w‖ with ξ ~ N(0, σ²I):
a pure-noise, tangential gradient that scales like the gradient of a scale-invariant loss
(⟨w, g⟩ = 0 and g(cw) = g(w)/c in distribution). Nothing pulls w anywhere, so only the
optimizer's geometry drives ‖w‖ and the angular step Δ_t — the cleanest setting for the
effective-step predictions of theory §2–3.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def tangential(x: Tensor, w: Tensor) -> Tensor:
    """Π⊥(x) = x − ŵ⟨ŵ, x⟩, row-wise over the last axis (one row per replica)."""
    w_hat = w / w.norm(dim=-1, keepdim=True)
    return x - w_hat * (w_hat * x).sum(dim=-1, keepdim=True)


class NoiseDrivenToy:
    """``replicas`` independent weights of dimension ``d`` as one ``(replicas, d)`` tensor.

    >>> toy = NoiseDrivenToy(d=64, replicas=1000, seed=0)
    >>> opt = sandbox.create("sgdp", toy.param_groups(), lr=0.1)     # doctest: +SKIP
    >>> for t in range(100): toy.fill_grad(); opt.step()             # doctest: +SKIP
    """

    def __init__(self, d: int, replicas: int, r0: float = 1.0, sigma: float = 1.0, seed: int = 0,
                 dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                 shape: tuple[int, ...] | None = None):
        self.d, self.replicas, self.sigma = d, replicas, sigma
        self.gen = torch.Generator(device=device).manual_seed(seed)
        w = torch.randn(replicas, d, generator=self.gen, dtype=dtype, device=device)
        self.w = (r0 * w / w.norm(dim=-1, keepdim=True)).requires_grad_(False)
        # ``shape``: the item shape of one replica (default (d,)). A matrix shape such as (1, d)
        # or (2, d // 2) lets AdamP's projection act (it never projects vectors); the toy's
        # geometry (norms, Π⊥) is always that of the flattened d-vector.
        if shape is not None:
            shape = tuple(int(s) for s in shape)
            if math.prod(shape) != d:
                raise ValueError(f"shape {shape} must hold d={d} elements")
            self.w = self.w.reshape((replicas,) + shape)

    def param_groups(self, **hyperparams) -> list[dict]:
        """Param groups for ``sandbox.create``: one group, replica axis 0."""
        return [{"params": [self.w], "replica_dims": 1, **hyperparams}]

    def gradient(self, w: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """g = Π⊥(ξ)/‖w‖ at ``w`` (default the toy's weight) with ``noise`` = ξ (default: a fresh
        draw, :meth:`draw_noise`). Passing the same ξ at w and at c·w gives ∇f(cw) = ∇f(w)/c."""
        w = self.w if w is None else w
        xi = self.draw_noise() if noise is None else noise
        x, n = w.reshape(w.shape[0], -1), xi.reshape(w.shape[0], -1)
        return (tangential(n, x) / x.norm(dim=-1, keepdim=True)).reshape(w.shape)

    def draw_noise(self) -> Tensor:
        """ξ ~ N(0, σ²I), shaped like ``w`` (one draw per step)."""
        return self.sigma * torch.randn(self.w.shape, generator=self.gen, dtype=self.w.dtype,
                                        device=self.w.device)

    def fill_grad(self) -> Tensor:
        self.w.grad = self.gradient()
        return self.w.grad

"""The common shape of the batched toy problems: one parameter tensor ``(R, *item_shape)``.

Axis 0 indexes ``R`` independent replicas (``replica_dims=1`` in the param group), so thousands of
trajectories run through the registry's real optimizer code as one tensor. A toy computes the
gradient of every replica at once (whole-tensor operations, no loop over replicas), writes it into
``w.grad`` (:meth:`ReplicaToy.fill_grad`), and can evaluate the gradient at any point with the same
randomness (``gradient(w, noise)``), which is what the exact identity checks need
(∇f(cw) = ∇f(w)/c compares two points under the SAME noise draw).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


class ReplicaToy:
    """Base class: ``R`` replicas of a weight with item shape ``shape`` in one tensor ``self.w``.

    Subclasses implement ``gradient(w, noise=None)`` (and usually ``loss(w)``, per replica) and
    ``draw_noise()`` (``None`` for deterministic toys). ``w`` is a leaf tensor without
    ``requires_grad``; the optimizer updates it in place.
    """

    def __init__(self, shape, replicas: int, seed: int = 0, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu"):
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if replicas < 1 or any(s < 1 for s in shape) or not shape:
            raise ValueError(f"replicas must be >= 1 and shape a non-empty tuple of positive sizes; "
                             f"got replicas={replicas}, shape={shape}")
        self.shape, self.replicas = shape, int(replicas)
        self.d = math.prod(shape)
        self.dtype, self.device = dtype, torch.device(device)
        self.gen = torch.Generator(device=self.device).manual_seed(int(seed))
        self.w = torch.zeros((self.replicas,) + shape, dtype=dtype, device=self.device)

    # --- helpers -------------------------------------------------------------------------------
    def randn(self, *shape: int) -> Tensor:
        """Standard normal draws from this toy's generator (reproducible per seed)."""
        return torch.randn(shape, generator=self.gen, dtype=self.dtype, device=self.device)

    def flat(self, x: Tensor) -> Tensor:
        """``(R, *shape)`` → ``(R, d)``: one row per replica."""
        return x.reshape(x.shape[0], -1)

    def unflat(self, x: Tensor) -> Tensor:
        return x.reshape((x.shape[0],) + self.shape)

    def random_directions(self, r0: float = 1.0) -> Tensor:
        """Uniform random points of radius ``r0`` (per replica), shaped like ``w``."""
        x = self.randn(self.replicas, self.d)
        return self.unflat(r0 * x / x.norm(dim=-1, keepdim=True))

    # --- interface -----------------------------------------------------------------------------
    def draw_noise(self):
        """The randomness of one gradient evaluation (None: deterministic toy)."""
        return None

    def gradient(self, w: Tensor, noise=None) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def param_groups(self, **hyperparams) -> list[dict]:
        """Param groups for ``sandbox.create``: one group with replica axis 0."""
        return [{"params": [self.w], "replica_dims": 1, **hyperparams}]

    def fill_grad(self) -> Tensor:
        """Draw fresh noise, write ∇f(w) into ``w.grad`` and return it."""
        self.w.grad = self.gradient(self.w, self.draw_noise())
        return self.w.grad

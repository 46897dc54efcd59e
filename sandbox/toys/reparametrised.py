r"""Variants of one problem that should (or should not) give the same trajectory: diagonal
reparametrisations θ = D ⊙ φ and loss rescalings f → c·f, all in one tensor.

Variant k of a base toy (any :class:`~sandbox.toys.replica_toy.ReplicaToy` with
``gradient(w, noise)``) trains φ_k with the loss F_k(φ) = c_k · f(D_k ⊙ φ), whose gradient is

.. math:: \nabla F_k(\phi) = c_k\, D_k \odot \nabla f(D_k \odot \phi),

started at φ_{k,0} = θ_0 / D_k, and every variant sees the SAME noise draw at every step. A rule
invariant to the transformation gives θ-space trajectories D_k ⊙ φ_{k,t} equal to the plain
variant's (k = 0, D = 1, c = 1) — exactly, or once its state has forgotten its start (theory §6).

The variants are stacked on a second replica axis: the parameter has shape ``(K, R, *item)`` and
``replica_dims=2``, so one optimizer step moves every variant of every replica, each with its own
per-replica reductions (projection, Adai's mean), through the registry's real code.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .replica_toy import ReplicaToy


class Reparametrised:
    """K variants (``diags[k]``, ``loss_scales[k]``) of ``base`` sharing its noise.

    ``diags``: a sequence of K tensors broadcastable to one replica's item shape (e.g. length-d
    vectors; a scalar rescales every coordinate), or None for all ones. ``loss_scales``: K positive
    numbers or None for all ones. Variant 0 should be the identity (the reference trajectory).
    """

    def __init__(self, base: ReplicaToy, diags: Sequence | None = None,
                 loss_scales: Sequence[float] | None = None):
        k = len(diags) if diags is not None else len(loss_scales or ())
        if k < 1:
            raise ValueError("give at least one variant (diags or loss_scales)")
        diags = [1.0] * k if diags is None else list(diags)
        scales = [1.0] * k if loss_scales is None else [float(c) for c in loss_scales]
        if len(diags) != k or len(scales) != k:
            raise ValueError(f"diags and loss_scales must have the same length; got "
                             f"{len(diags)} and {len(scales)}")
        if any(c <= 0 for c in scales):
            raise ValueError(f"loss scales must be > 0; got {scales}")
        self.base, self.K = base, k
        item = base.w.shape[1:]
        d = torch.stack([torch.as_tensor(x, dtype=base.dtype, device=base.device).expand(item)
                         for x in diags])
        if bool((d == 0).any()):
            raise ValueError("diagonal reparametrisations need non-zero entries")
        self.diag = d.unsqueeze(1)  # (K, 1, *item), broadcasts over replicas
        self.loss_scale = torch.tensor(scales, dtype=base.dtype, device=base.device).reshape(
            (k,) + (1,) * base.w.ndim)
        self.w = (base.w.unsqueeze(0) / self.diag).clone()  # φ_0 = θ_0 / D

    def param_groups(self, **hyperparams) -> list[dict]:
        """One group, two replica axes: (variant, replica)."""
        return [{"params": [self.w], "replica_dims": 2, **hyperparams}]

    def theta(self, w: Tensor | None = None) -> Tensor:
        """θ-space positions D_k ⊙ φ_k, shape (K, R, *item)."""
        return self.diag * (self.w if w is None else w)

    def gradient(self, w: Tensor, noise=None) -> Tensor:
        theta = self.theta(w)
        g = self.base.gradient(theta.reshape((-1,) + theta.shape[2:]),
                               None if noise is None else self._tile(noise))
        return self.loss_scale * self.diag * g.reshape(theta.shape)

    def _tile(self, noise):
        """The same noise for every variant (stacked along the replica axis)."""
        return torch.cat([noise] * self.K, dim=0)

    def draw_noise(self):
        return self.base.draw_noise()

    def fill_grad(self) -> Tensor:
        self.w.grad = self.gradient(self.w, self.draw_noise())
        return self.w.grad

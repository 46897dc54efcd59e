"""Layer-wise trust ratios: LAMB's (You et al., ICLR 2020, "Large Batch Optimization for Deep
Learning: Training BERT in 76 minutes") and LARS's local learning rate (You, Gitman, Ginsburg 2017,
"Large Batch Training of Convolutional Networks").

Both rescale the whole update of one tensor (per replica) by a ratio of norms, so that the size of
the step is proportional to the size of the weight: LAMB's update has norm exactly lr·‖θ‖ (its
relative update is lr), LARS's has norm lr·η·‖θ‖·‖g + λθ‖/(‖g‖ + λ‖θ‖) ≈ lr·η·‖θ‖ (before momentum).

Implementations commonly switch the adaptation off for normalisation and bias tensors. Here that is
the ``layer_adaptation`` hyperparameter, set per parameter group (never decided from a name or a
shape): with ``layer_adaptation=False`` the stage is the identity (LAMB: the Adam step, LARS: SGD).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import hyper as H
from ..replicas import broadcast_to_items, per_replica_sum
from .base import Context, Flow, Reduce, Stage, StageTraits

LAMB = "You et al., ICLR 2020 (LAMB)"
LARS = "You, Gitman & Ginsburg 2017 (LARS)"
_ADAPT_DOC = ("apply the layer-wise trust ratio to this group's tensors (False: the plain step; "
              "set it False per param group for normalisation and bias tensors, as LAMB/LARS "
              "implementations do)")


def _norms(rd: int, *xs: Tensor):
    """Per-replica 2-norms of ``xs`` (shape R each, 0-d when rd = 0), in at least float32: this
    shard's sums of squares are requested as one ``Reduce`` over the whole tensor (a generator:
    the stage's ``apply`` yields from it), so the norms are the whole tensor's under sharding."""
    acc = torch.promote_types(xs[0].dtype, torch.float32)
    sq = torch.stack([per_replica_sum(x.to(acc).square(), rd) for x in xs], dim=-1)
    sq = yield Reduce("sum", "tensor", sq)
    return sq.sqrt().unbind(-1)


def _scale(u: Tensor, ratio: Tensor, rd: int) -> Tensor:
    return u * broadcast_to_items(ratio, u, rd).to(u.dtype)


class lamb_trust_ratio(Stage):
    r"""LAMB's per-tensor trust ratio (Algorithm 2 of the paper, φ = identity):

    .. math::  u \leftarrow \frac{\lVert\theta\rVert}{\lVert u\rVert}\, u,
               \qquad\text{ratio } 1 \text{ where } \lVert\theta\rVert = 0 \text{ or } \lVert u\rVert = 0

    where ``u`` is everything before it in the chain (LAMB: ``m̂/(√v̂ + ε) + λθ``). With the final
    ``scale_by_lr`` the step is ``−lr·‖θ‖·u/‖u‖``: its norm is exactly ``lr·‖θ‖``. The paper's
    scaling function φ(‖θ‖) may clip ‖θ‖ to [γ_l, γ_u]; φ = identity is the form it analyses
    and the one here (some libraries clip ‖θ‖ at 10: see the lamb rule's docstring). The norms are
    per replica and taken in at least float32.

    Traits: degree 0 in the gradient (any scalar factor on ``u`` cancels), and a normalisation of
    the direction (``preconditions``): a weight decay placed before it is normalised with the
    update, i.e. LAMB's decay is coupled, neither AdamW's decoupled θ(1 − lr·λ) nor an L2 term
    that passes through Adam's moments.
    """

    name = "lamb_trust_ratio"
    hypers = (H.flag("layer_adaptation", True, _ADAPT_DOC, LAMB),)
    traits = StageTraits(degree=(0.0, 0.0), preconditions=True, size_law="trust_ratio")
    reductions = (("sum", "tensor"),)  # ‖θ‖ and ‖u‖ of the whole tensor

    def apply(self, flow: Flow, ctx: Context):
        if not ctx.hp.get("layer_adaptation", True):
            return flow
        rd, u = ctx.replica_dims, flow.u
        w_norm, u_norm = yield from _norms(rd, ctx.param, u)
        ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
        ctx.info["trust_ratio"] = ratio
        return flow.with_u(_scale(u, ratio, rd))


class lars_local_lr(Stage):
    r"""LARS's local learning rate (Algorithm 1 of the paper):

    .. math::  u \leftarrow \eta\,\frac{\lVert\theta\rVert}{\lVert g\rVert + \lambda\lVert\theta\rVert}\; u

    with ``g`` the raw gradient (``ctx.grad``), λ = ``weight_decay``, η = ``trust_coefficient``
    and ``u`` everything before it in the chain (LARS: ``g + λθ``). Where ‖θ‖ = 0 or the
    denominator is 0 the ratio is 1 (the paper leaves it undefined; pytorch-optimizer's choice).
    Per replica; norms in at least float32.

    Traits: degree 0 in the gradient (λ → 0: ‖g‖ in the denominator cancels the degree of ``u``)
    and a normalisation of the direction (``preconditions``), which makes the decay before it
    coupled.
    """

    name = "lars_local_lr"
    hypers = (H.Hyper("trust_coefficient", 1e-3, *H.nonnegative(), "trust coefficient eta of the "
                      "local learning rate", LARS),
              H.weight_decay(0.0, "", "weight decay λ (also in the local learning rate)"),
              H.flag("layer_adaptation", True, _ADAPT_DOC, LARS))
    traits = StageTraits(degree=(0.0, 0.0), preconditions=True, size_law="trust_ratio")
    reductions = (("sum", "tensor"),)  # ‖θ‖ and ‖g‖ of the whole tensor

    def apply(self, flow: Flow, ctx: Context):
        if not ctx.hp.get("layer_adaptation", True):
            return flow
        rd, u = ctx.replica_dims, flow.u
        w_norm, g_norm = yield from _norms(rd, ctx.param, ctx.grad)
        denom = g_norm + ctx.hp["weight_decay"] * w_norm
        ok = (w_norm > 0) & (denom > 0)
        ratio = torch.where(ok, ctx.hp["trust_coefficient"] * w_norm / torch.where(ok, denom, 1.0),
                            torch.ones_like(w_norm))
        ctx.info["trust_ratio"] = ratio
        return flow.with_u(_scale(u, ratio, rd))

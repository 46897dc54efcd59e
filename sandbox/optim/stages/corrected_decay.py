"""Corrected weight decay (Defazio 2025, "Why Gradients Rapidly Increase Near the End of Training",
arXiv 2506.02285): AdamC and SGDC.

On a normalised layer (a scale-invariant weight) the steady state of ‖g‖/‖w‖ under decay λ and
learning rate γ is sqrt(2λ/γ) (SGD); a schedule that lowers γ_t at the end of training raises it.
The correction replaces λ on normalised tensors by λ·γ_t/γ_max, so that the per-step shrink
γ_t·λ becomes c_t·λ with c_t = γ_t²/γ_max and the steady state sqrt(2λ/γ_max) no longer follows
the schedule. Other tensors keep the uncorrected decay.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .. import hyper as H
from .base import Context, Flow, Stage, StageTraits

DEFAZIO = "Defazio 2025, arXiv 2506.02285 (AdamC/SGDC)"


def _bool(x: Any) -> bool:
    return isinstance(x, bool)


def _none_or_positive(x: Any) -> bool:
    if x is None:
        return True
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    return math.isfinite(x) and x > 0


NORMALIZED = H.Hyper(
    "normalized", H.REQUIRED, _bool,
    "True or False, per param group (sandbox.probes.normalised_groups.normalised_param_groups(model) "
    "builds the groups from the architecture)",
    "whether this group's tensors are normalised (scale-invariant: they feed a BatchNorm/LayerNorm/"
    "GroupNorm...); the corrected decay applies to them only. Pass it per param group, e.g. from "
    "sandbox.probes.normalised_groups.normalised_param_groups(model), which reads the architecture",
    DEFAZIO)
LR_MAX = H.Hyper(
    "lr_max", None, _none_or_positive, "None or a real number > 0",
    "γ_max, the schedule's peak learning rate; None: the largest of the group's initial_lr (set "
    "by torch's LR schedulers) and every lr it has had at a step so far", DEFAZIO)


class corrected_decay(Stage):
    r"""u ← u + λ·s·c·θ with c = γ_t/γ_max on normalised tensors, c = 1 elsewhere.

    ``s = flow.decay_scale`` (the projection's ``wd_ratio`` where it fired). Placed where the base
    rule puts its decay: after the direction (AdamC: with the final ``scale_by_lr`` the shrink is
    θ(1 − λ·s·γ_t²/γ_max)) or before the momentum (SGDC: torch SGD's L2 with λ_t = λγ_t/γ_max).

    γ_max (a documented choice): ``lr_max`` when given; otherwise the largest of the group's
    ``initial_lr`` (torch's LR schedulers record the lr the group had when the scheduler was built:
    the peak for cosine, step, linear decay and warm-ups that multiply the base lr by factors ≤ 1)
    and every lr this tensor has had at a step (``lr_max`` in its state: one number in the
    parameter's dtype, stored repeated in a tensor of the parameter's shape; at a constant lr the
    ratio is exactly 1 in every dtype). So c ≤ 1 always
    (the decay is never stronger than the uncorrected rule's), and with OneCycleLR, whose
    ``initial_lr`` is max_lr/div_factor, the warm-up runs uncorrected until the peak is reached;
    pass ``lr_max`` for the paper's γ_max there. With a given ``lr_max`` below the current lr, γ_max
    is the current lr (c = 1).

    ``normalized`` has no default: a group that does not say refuses at construction, naming it.
    """

    name = "corrected_decay"
    reductions = ()  # element-wise (a sharded parameter steps shard by shard)
    hypers = (H.weight_decay(0.0, "", "weight decay λ"), NORMALIZED, LR_MAX)
    traits = StageTraits(decays=True, size_law="corrected_decay")
    state = {"lr_max": "the largest lr seen at a step (γ_max when lr_max is None); one number, "
                       "stored repeated in a tensor of the parameter's shape"}

    def required_state(self, hp) -> tuple:
        return ("lr_max",)

    def apply(self, flow: Flow, ctx: Context) -> Flow:
        hp, st, p = ctx.hp, ctx.state, ctx.param
        lr = float(hp["lr"])
        floor = max(lr, float(hp.get("initial_lr", 0.0)))
        if "lr_max" in st and st["lr_max"].numel() > 0:  # whole-tensor: no host read
            seen = torch.clamp(st["lr_max"].reshape(-1)[:1].reshape(()), min=floor)
        else:
            seen = torch.full((), floor, dtype=p.dtype, device=p.device)
        st["lr_max"] = seen.to(st["lr_max"].dtype if "lr_max" in st else seen.dtype).expand(p.shape).contiguous()
        wd = hp["weight_decay"]
        if wd == 0:
            return flow
        if not hp["normalized"]:
            c = 1.0
        elif hp.get("lr_max") is not None:
            c = lr / max(float(hp["lr_max"]), lr) if lr > 0 else 0.0
        else:
            c = torch.where(seen > 0, lr / torch.where(seen > 0, seen, 1.0), 0.0).to(p.dtype)
        ctx.info["decay_correction"] = c
        return flow.with_u(flow.u + (wd * c * flow.decay_scale) * p)

"""The rotational wrapper of Kosson, Messmer & Jaggi (ICML 2024, "Rotational Equilibrium: How Weight
Decay Balances Learning Across Neural Networks"; arXiv 2305.17212; official code
epfml/rotational-optimizers, ``shared/optimizers/rotational_{adamw,sgd,lion}.py``).

On a "rotational" tensor the base rule's direction only sets WHERE the weight turns; how FAR each
neuron turns per step is fixed to the angular update that weight decay would give at equilibrium,
from the very first step, and the neuron's norm is frozen at its initial value. The decay itself is
then not applied (the norm is held fixed instead). Other tensors run the base rule unchanged.

Two stages, used together by the rules ``rvadamw``, ``rvsgd`` and ``rvlion``:

- :class:`rotational_decay` — the base rule's weight decay λθ on NON-rotational tensors only
  (placed where the base rule puts it: before the momentum for RV-SGD's coupled L2, after the
  direction for RV-AdamW's and RV-Lion's decoupled decay);
- :class:`rotate` — the last stage: on rotational tensors the rotational step (replacing the
  decay and the learning rate), elsewhere ``u ← −lr·u`` (``scale_by_lr``).

Which tensors are rotational (the official rule): the group key ``rotational`` (True/False) if
given, else those whose item shape squeezed has at least ``scale_invariance_min_dim`` (2) axes,
with ``weight_decay > 0``. The official code raises ValueError when ``rotational=True`` is forced
on a tensor it cannot rotate (a vector with per-neuron rotation, or λ = 0). A step here cannot
refuse part-way (it completes or changes nothing), so such a tensor runs the base rule instead;
``last_info[p]['rotational']`` says, per tensor, which path ran.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Optional

import torch
from torch import Tensor

from .. import hyper as H
from ..replicas import item_shape, rows
from .base import Context, Flow, Stage, StageTraits

KOSSON = "Kosson, Messmer & Jaggi, ICML 2024; official epfml/rotational-optimizers default"


def _none_or_bool(x: Any) -> bool:
    return x is None or isinstance(x, bool)


def _positive_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


def _unit_interval(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and 0.0 <= x < 1.0


ROTATIONAL_HYPERS = (
    H.Hyper("rotational", None, _none_or_bool, "None, True or False",
            "force the rotational update on (True) or off (False) for this group's tensors; None: "
            "tensors with at least scale_invariance_min_dim axes and weight_decay > 0", KOSSON),
    H.flag("per_neuron", True, "one rotation per neuron (rows of the first axis; official "
           "scale_invariance='channel'); False: the whole tensor ('tensor')", KOSSON),
    H.Hyper("scale_invariance_min_dim", 2, _positive_int, "an integer >= 1",
            "axes (after squeezing) a tensor needs to be rotational by default", KOSSON),
    H.flag("zero_mean", True, "keep each neuron centred (its mean removed after every step; the "
           "norm recorded at the first step is that of the centred weight)", KOSSON),
    H.Hyper("update_norm_decay_factor", 0.99, _unit_interval, "a real number in [0, 1)",
            "EMA coefficient of the squared update norm per neuron (bias-corrected)", KOSSON),
)


def is_rotational(p: Tensor, hp: Mapping[str, Any], rd: int) -> bool:
    """Does ``p`` take the rotational update under the group ``hp`` (see the module docstring)?"""
    squeezed = sum(1 for s in item_shape(p, rd) if s != 1)
    can = (hp["weight_decay"] > 0 and p.numel() > 0 and squeezed >= 1
           and not (hp["per_neuron"] and squeezed <= 1))
    forced = hp.get("rotational")
    if forced is None:
        return can and squeezed >= hp["scale_invariance_min_dim"]
    return bool(forced) and can


class rotational_decay(Stage):
    """u ← u + λ·s·θ on tensors that are NOT rotational (their norm is held fixed instead);
    ``s = flow.decay_scale`` (the projection's ``wd_ratio`` where it fired)."""

    name = "rotational_decay"
    hypers = (H.weight_decay(0.0, "", "weight decay λ (sets the target rotation of rotational "
                                      "tensors; ordinary decay on the others)"),) + ROTATIONAL_HYPERS
    traits = StageTraits(decays=True)

    def apply(self, flow: Flow, ctx: Context) -> Flow:
        wd = ctx.hp["weight_decay"]
        if wd == 0 or is_rotational(ctx.param, ctx.hp, ctx.replica_dims):
            return flow
        return flow.with_u(flow.u + (wd * flow.decay_scale) * ctx.param)


def _expand(stat: Tensor, like_rows: Tensor, shape) -> Tensor:
    """A per-row statistic (``(*R, K, 1)``) stored repeated in a tensor of the parameter's shape
    (the optimizer's checks want the parameter's shape; a stride-0 view would save the memory but
    cannot be loaded by torch.distributed.checkpoint)."""
    return stat.expand(like_rows.shape).reshape(shape).contiguous()


class rotate(Stage):
    r"""The rotational step (last stage of the chain; official ``rotational_*.py``, per row).

    On a rotational tensor, with ``d`` the base direction (``u`` times ``direction_scale``: RV-AdamW
    undoes Adam's first bias correction, the official direction being m/(√v̂ + ε)), per neuron
    (row of the first axis; the whole tensor when ``per_neuron=False``):

    1. ``n`` = the row's norm at its first step (of the centred row when ``zero_mean``), kept;
    2. ``d ← d − θ⟨d, θ⟩/n²`` (radial part removed; not re-centred, as the official code);
    3. ``U ← undf·U + (1−undf)·‖d‖²``, ``ū = sqrt(U/(1 − undf^t))`` (``t``: the rule's step count);
    4. ``θ' = θ − ρ·n·d/(ε + ū)``; with ``zero_mean`` the row's mean is removed from ``θ'``;
       ``θ' ← θ'·n/‖θ'‖``; the stage returns ``u = θ' − θ``.

    ρ = ``target(hp)``, the rule's equilibrium angular update (RV-AdamW sqrt(2ηλ(1−β1)/(1+β1)),
    RV-SGD sqrt(2ηλ/(1+μ)), RV-Lion sqrt(π/2)·sqrt(2ηλ)·sqrt((1−β1)² + β1²(1−β2)/(1+β2))).
    Elsewhere: ``u ← −lr·u``.

    Deliberate difference: a row whose recorded norm is 0 (a zero row, or a constant row with
    ``zero_mean``) stays as it is; the official code divides by 0 there (NaN).
    State (official names): ``weight_norm`` (n) and ``update_norm2`` (U), per row, stored as
    tensors of the parameter's shape (one number per row, repeated); ``step`` when ``own_step`` (RV-SGD, RV-Lion; RV-AdamW
    reads Adam's counter). Every step of every tensor counts, as in the official RV-Lion; the
    official RV-SGD counts only rotational steps: the same unless a tensor starts rotating mid-run
    (λ or ``rotational`` changed), where the bias correction 1 − undf^t then uses the total count.
    """

    name = "rotate"

    def __init__(self, target: Callable[[Mapping[str, Any]], float], own_step: bool = True,
                 direction_scale: Optional[Callable[[Mapping[str, Any], dict], float]] = None):
        self.target, self.own_step, self.direction_scale = target, own_step, direction_scale
        self.hypers = (H.lr(H.REQUIRED, ""), H.eps(1e-8, KOSSON, "added to the rms update norm ū"),
                       H.weight_decay(0.0, "", "weight decay λ")) + ROTATIONAL_HYPERS
        # The traits are the base rule's (``scale_by_lr``'s): they describe every tensor that does
        # not rotate (λ = 0 included). On rotational tensors the update is tangential and of
        # degree 0 (d/ū), but neither the homogeneity laws nor AdamP's projection traits (M = 1,
        # wd_ratio, the projection identities) describe a step that fixes the angle and the norm:
        # theory.rotational does.
        self.traits = StageTraits(size_law="rotation")
        self.state = {"weight_norm": "per-row norm n recorded at the first rotational step",
                      "update_norm2": "per-row EMA U of the squared update norm"}
        if own_step:
            self.state = {**self.state, "step": "step count t"}

    def required_state(self, hp) -> tuple:
        return ()  # whether a tensor is rotational depends on its shape, not on the group

    def apply(self, flow: Flow, ctx: Context) -> Flow:
        hp, rd, p = ctx.hp, ctx.replica_dims, ctx.param
        rotating = is_rotational(p, hp, rd)
        ctx.info["rotational"] = rotating
        t = ctx.step_count() if self.own_step else None
        if not rotating:
            return flow.with_u(flow.u * (-hp["lr"]))
        t = t if self.own_step else float(ctx.state["step"])
        dtype = ctx.compute_dtype
        d = flow.u.to(dtype)
        if self.direction_scale is not None:
            d = d * self.direction_scale(hp, ctx.state)
        view = "channel" if hp["per_neuron"] else "layer"
        P, D = rows(p.to(dtype), rd, view), rows(d, rd, view)
        zero_mean = hp["zero_mean"]
        if "weight_norm" not in ctx.state:
            base = P - P.mean(dim=-1, keepdim=True) if zero_mean else P
            n = torch.linalg.vector_norm(base, dim=-1, keepdim=True)
            ctx.state["weight_norm"] = _expand(n.to(p.dtype), P, p.shape)
        n = rows(ctx.state["weight_norm"], rd, view)[..., :1].to(dtype)
        ok = n > 0
        n_safe = torch.where(ok, n, torch.ones_like(n))
        D = D - P * ((D * P).sum(dim=-1, keepdim=True) / n_safe ** 2)
        d_norm2 = torch.linalg.vector_norm(D, dim=-1, keepdim=True) ** 2
        undf = hp["update_norm_decay_factor"]
        U = (1.0 - undf) * d_norm2
        if "update_norm2" in ctx.state:
            U = U + undf * rows(ctx.state["update_norm2"], rd, view)[..., :1].to(dtype)
        ctx.state["update_norm2"] = _expand(U.to(p.dtype), P, p.shape)
        u_bar = torch.sqrt(U / (1.0 - undf ** t))
        rho = self.target(hp)
        new = P - rho * (D / (hp["eps"] + u_bar)) * n
        if zero_mean:
            new = new - new.mean(dim=-1, keepdim=True)
        norm_new = torch.linalg.vector_norm(new, dim=-1, keepdim=True)
        new = torch.where(ok, new * n / torch.where(ok, norm_new, 1.0), P)
        return Flow((new - P).reshape(p.shape).to(p.dtype), 0.0, None)


def rho_sgd(hp) -> float:
    """RV-SGD's target rotation sqrt(2·lr·λ/(1 + μ)) (official rotational_sgd.py)."""
    return (2 * hp["lr"] * hp["weight_decay"] / (1 + hp["momentum"])) ** 0.5


def rho_adamw(hp) -> float:
    """RV-AdamW's target rotation sqrt(2·lr·λ·(1−β1)/(1+β1)) (official rotational_adamw.py)."""
    b1 = hp["betas"][0]
    return (2 * hp["lr"] * hp["weight_decay"] * (1 - b1) / (1 + b1)) ** 0.5


def rho_lion(hp) -> float:
    """RV-Lion's target rotation sqrt(π/2)·sqrt(2·lr·λ)·sqrt((1−β1)² + β1²(1−β2)/(1+β2))
    (official rotational_lion.py)."""
    b1, b2 = hp["betas"]
    return (math.pi / 2.0) ** 0.5 * (2 * hp["lr"] * hp["weight_decay"]) ** 0.5 * \
        ((1 - b1) ** 2 + b1 ** 2 * (1 - b2) / (1 + b2)) ** 0.5


def adam_direction_scale(hp, state) -> float:
    """1 − β1^t: turns m̂/(√v̂ + ε) back into the official RV-AdamW direction m/(√v̂ + ε)."""
    return 1.0 - hp["betas"][0] ** float(state["step"])

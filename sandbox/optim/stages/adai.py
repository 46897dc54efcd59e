"""Adaptive inertia (Adai; Xie, Wang, Zhang, Sato, Sugiyama, ICML 2022, "Adaptive Inertia:
Disentangling the Effects of Adaptive Learning Rate and Momentum", official code
zeke-xie/adaptive-inertia-adai)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..replicas import broadcast_to_items, per_replica_numel, per_replica_sum
from .. import hyper as H
from .base import Context, Flow, Reduce, Stage, StageTraits


SUM_KEY, COUNT_KEY = "adaptive_inertia.sum", "adaptive_inertia.count"  # its global statistics


class adaptive_inertia(Stage):
    r"""Adai's per-element momentum from the second moment, relative to its global mean.

    .. math::
        v_t = \beta_2 v_{t-1} + (1-\beta_2) u_t^2,\quad \hat v_t = v_t/(1-\beta_2^{t}),\quad
        \bar v_t = \frac{\sum_{\text{all elements}} \hat v_t}{\#\text{elements}}

    (the mean over every element of every parameter of every group: one global request), then per
    parameter

    .. math::
        \beta_{1,t} = \mathrm{clip}\big(1 - \beta_0\, \hat v_t / \bar v_t,\ 0,\ 1-\epsilon\big),\quad
        P_t = P_{t-1}\,\beta_{1,t},\quad
        m_t = \beta_{1,t} m_{t-1} + (1-\beta_{1,t}) u_t,\quad d_t = m_t / (1 - P_t)

    ``betas = (β0, β2)`` default (0.1, 0.99), ``eps`` = 1e-3 bounds the inertia (official defaults).
    The step counter ``t`` is per parameter (official code). With replicas, v̄ is per replica.

    The request is made before anything is written: this parameter's part of Σ v̂_t is taken as
    ((1 − β2) Σ u_t² + β2 Σ v_{t−1})/(1 − β2^t) (the same number as Σ v̂_t up to rounding), and
    ``v``, ``t`` and the rest are written once the mean is back (``defers_writes``).

    Deliberate difference from the official code: when v̄ = 0 (every gradient so far exactly
    zero) the official rule computes 0/0 = NaN. Here v̂/v̄ is defined as 1 in that case (every
    element sits at the mean), so β1 = 1 − β0 and, since m and u are zero, the update is exactly
    zero: no NaN. Everything else is the official rule.
    The global sum is accumulated in at least float32 (float64 for float64 parameters); the element
    count exactly (float64).
    State: ``step``, ``exp_avg``, ``exp_avg_sq``, ``beta1_prod`` (official names).

    Low precision (bfloat16/float16 parameters): β1 and ``beta1_prod`` are computed and kept in
    float32 (``FULL_PRECISION_STATE``). In bfloat16 the inertia bound 1 − eps = 0.999 rounds to
    exactly 1, so ``beta1_prod`` would stick at 1 and the bias correction 1 − beta1_prod at 0
    (a division by zero); the optimizer keeps these keys in float32 across ``load_state_dict``.
    """

    FULL_PRECISION_STATE = ("beta1_prod",)

    name = "adaptive_inertia"
    hypers = (H.betas((0.1, 0.99), "", "(beta0, beta2): inertia scale and second-moment EMA"),
              H.eps(1e-3, "", "inertia bound: beta1 <= 1 - eps"))
    # k = 1: β1 depends on ratios of v only; the isotropic inertia is β1 = 1 − β0
    traits = StageTraits(momentum="adaptive", beta=lambda hp: 1.0 - float(hp["betas"][0]),
                         modelled=True)
    state = {"step": "step counter t", "exp_avg": "m_t", "exp_avg_sq": "v_t",
             "beta1_prod": "P_t, the product of past β1 (per element)"}
    reductions = (("sum", "global"),)
    defers_writes = True

    @staticmethod
    def partial_sum(u: Tensor, ctx: Context) -> Tensor:
        """This parameter's (or shard's) Σ v̂_t per replica, read-only: v and t are not written."""
        beta2 = ctx.hp["betas"][1]
        rd = ctx.replica_dims
        step = ctx.state.get("step")
        bc = 1.0 - beta2 ** ((float(step) if step is not None else 0.0) + 1.0)
        acc = torch.promote_types(u.dtype, torch.float32)
        total = per_replica_sum(torch.square(u if u.dtype == acc else u.to(acc)), rd).mul_((1.0 - beta2) / bc)
        v = ctx.state.get("exp_avg_sq")
        if v is not None:
            total = total.add_(per_replica_sum(v, rd, dtype=acc), alpha=beta2 / bc)
        return total

    _counts: dict = {}  # (replica shape, elements per replica, device) → the count as a tensor

    @classmethod
    def count(cls, u: Tensor, rd: int) -> Tensor:
        """Elements per replica, exactly (float64), shape R (shared: never written)."""
        key = (tuple(u.shape[:rd]), per_replica_numel(u, rd), u.device)
        c = cls._counts.get(key)
        if c is None:
            c = cls._counts[key] = torch.full(key[0], float(key[1]), dtype=torch.float64, device=u.device)
        return c

    @staticmethod
    def inertia(v: Tensor, vbar: Tensor, step: float, hp, rd: int, dtype: torch.dtype) -> Tensor:
        """β1 = clip(1 − β0 v̂/v̄, 0, 1 − eps) per element, with v̂ = v/(1 − β2^t) and v̂/v̄ = 1
        where v̄ = 0 (``vbar`` per replica)."""
        beta0, beta2 = hp["betas"]
        vbar = broadcast_to_items(vbar, v, rd).to(dtype)
        v_hat = v.to(dtype) / (1.0 - beta2 ** step)
        ratio = torch.where(vbar > 0, v_hat / vbar, torch.ones_like(v_hat))
        return (1.0 - beta0 * ratio).clamp_(0.0, 1.0 - hp["eps"])

    def apply(self, flow: Flow, ctx: Context):
        u = flow.u
        rd = ctx.replica_dims
        total, count = yield [Reduce("sum", "global", self.partial_sum(u, ctx), SUM_KEY),
                              Reduce("sum", "global", self.count(u, rd), COUNT_KEY)]
        vbar = total / count.to(total.dtype)
        # the writes: t, v, then the inertia
        beta2 = ctx.hp["betas"][1]
        t = ctx.step_count()
        v = ctx.state_tensor("exp_avg_sq")
        v.mul_(beta2).addcmul_(u, u, value=1.0 - beta2)
        dtype = ctx.compute_dtype
        beta1 = self.inertia(v, vbar, t, ctx.hp, rd, dtype)
        prod = ctx.state_tensor("beta1_prod", fill=1.0, dtype=dtype)
        prod.mul_(beta1)
        m = ctx.state_tensor("exp_avg")
        m.mul_(beta1).addcmul_(1.0 - beta1, u)
        ctx.info["beta1"] = beta1
        return flow.with_u((m / (1.0 - prod)).to(m.dtype))

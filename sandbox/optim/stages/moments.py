"""First- and second-moment stages: heavy-ball momentum and Adam's moments."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import hyper as H
from .base import Context, Flow, Stage, StageTraits


class heavy_ball(Stage):
    r"""Heavy-ball momentum with dampening and Nesterov (Polyak 1964; Sutskever et al. 2013).

    .. math::
        b_t = \mu\, b_{t-1} + (1-\tau)\, u_t, \qquad
        d_t = u_t + \mu\, b_t \ \text{(Nesterov)} \quad\text{else}\quad d_t = b_t

    with μ = ``momentum``, τ = ``dampening``. Two conventions for the first step:

    - ``first="input"`` (torch.optim.SGD): ``b_1 = u_1`` (no dampening on the first step);
    - ``first="zeros"`` (official SGDP, root-free RMSProp): ``b_0 = 0``, so ``b_1 = (1−τ) u_1``.

    Without Nesterov the returned direction IS the stored buffer (as in both references), which is
    what lets the official SGDP's in-place projection also project the buffer (``project_momentum``).
    With ``momentum == 0`` and ``first="input"``, the stage is the identity and keeps no state,
    exactly like torch.optim.SGD.
    """

    name = "heavy_ball"
    reductions = ()  # element-wise
    hypers = (H.momentum(0.0, ""), H.dampening(0.0, ""),
              H.flag("nesterov", False, "Nesterov momentum", "", structural=False))

    def __init__(self, key: str = "momentum_buffer", first: str = "input"):
        if first not in ("input", "zeros"):
            raise ValueError(f"first must be 'input' or 'zeros', got {first!r}")
        self.key, self.first = key, first
        self.state = {key: "heavy-ball buffer b_t"}
        identity_at_zero = first == "input"  # torch keeps no buffer and returns u when μ = 0
        self.traits = StageTraits(
            momentum="heavy_ball", beta=lambda hp: float(hp["momentum"]),
            dampening=lambda hp: float(hp.get("dampening", 0.0)),
            nesterov=lambda hp: bool(hp.get("nesterov", False)),
            direction_is_buffer=lambda hp: not hp.get("nesterov", False)
            and not (identity_at_zero and hp["momentum"] == 0), modelled=True)

    def required_state(self, hp) -> tuple:
        return () if self.first == "input" and hp["momentum"] == 0 else (self.key,)

    def apply(self, flow: Flow, ctx: Context) -> Flow:
        u = flow.u
        mu = ctx.hp["momentum"]
        tau = ctx.hp.get("dampening", 0.0)
        if self.first == "input":
            if mu == 0:
                return flow
            if self.key not in ctx.state:
                buf = ctx.state[self.key] = u.detach().clone(memory_format=torch.preserve_format)
            else:
                buf = ctx.state[self.key]
                buf.mul_(mu).add_(u, alpha=1.0 - tau)
        else:
            buf = ctx.state_tensor(self.key)
            buf.mul_(mu).add_(u, alpha=1.0 - tau)
        if ctx.hp.get("nesterov", False):
            return flow.with_u(u + mu * buf)
        return flow.with_u(buf, buffer=self.key)


class scale_by_adam(Stage):
    r"""Adam's bias-corrected moment ratio (Kingma & Ba, ICLR 2015), as torch.optim.Adam computes it.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) u_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) u_t^2,\\
        d_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}

    With ``amsgrad`` (torch.optim.Adam's option) the denominator uses ``v̂max_t = max(v̂max_{t−1}, v_t)``
    in place of ``v_t`` (state ``max_exp_avg_sq``), exactly as torch defines it.
    With ``nesterov`` (AdamP's option) the numerator is ``β1 m_t + (1−β1) u_t`` instead of ``m_t``
    (the official adamp 0.3.0 form: both terms divided by the same denominator).
    The learning rate is applied later by ``scale_by_lr``; ``lr/(1−β1^t)`` of the references is
    the same number split differently (equal to float round-off).
    State: ``step`` (CPU float32, as torch), ``exp_avg``, ``exp_avg_sq``.
    """

    name = "scale_by_adam"
    reductions = ()  # element-wise
    hypers = (H.betas((0.9, 0.999), ""), H.eps(1e-8, ""),
              H.flag("nesterov", False, "Nesterov form (β1 m + (1−β1) g)/denom", "", structural=False),
              H.flag("amsgrad", False, "AMSGrad: the denominator uses the running maximum of v",
                     "torch.optim.Adam", structural=False))
    traits = StageTraits(degree=(0.0, 0.0), momentum="ema", beta=lambda hp: float(hp["betas"][0]),
                         modelled=True,
                         preconditions=True)
    state = {"step": "step counter t", "exp_avg": "first moment m_t",
             "exp_avg_sq": "second moment v_t", "max_exp_avg_sq": "running max of v_t (amsgrad)"}

    def required_state(self, hp) -> tuple:
        return ("step", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if hp.get("amsgrad") else ())

    def update(self, u: Tensor, ctx: Context) -> Tensor:
        beta1, beta2 = ctx.hp["betas"]
        t = ctx.step_count()
        m = ctx.state_tensor("exp_avg")
        v = ctx.state_tensor("exp_avg_sq")
        m.mul_(beta1).add_(u, alpha=1.0 - beta1)
        v.mul_(beta2).addcmul_(u, u, value=1.0 - beta2)
        bc1 = 1.0 - beta1**t
        bc2 = 1.0 - beta2**t
        if ctx.hp.get("amsgrad", False):
            vmax = ctx.state_tensor("max_exp_avg_sq")
            torch.maximum(vmax, v, out=vmax)
            v = vmax
        denom = v.sqrt().div_(math.sqrt(bc2)).add_(ctx.hp["eps"])  # (in place on the fresh sqrt)
        numer = beta1 * m + (1.0 - beta1) * u if ctx.hp.get("nesterov", False) else m
        return torch.div(numer, denom, out=denom).div_(bc1)

"""First- and second-moment stages: heavy-ball momentum and Adam's moments."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Context, Stage


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

    def __init__(self, key: str = "momentum_buffer", first: str = "input"):
        if first not in ("input", "zeros"):
            raise ValueError(f"first must be 'input' or 'zeros', got {first!r}")
        self.key, self.first = key, first

    def update(self, u: Tensor, ctx: Context) -> Tensor:
        mu = ctx.hp["momentum"]
        tau = ctx.hp.get("dampening", 0.0)
        if self.first == "input":
            if mu == 0:
                return u
            if self.key not in ctx.state:
                buf = ctx.state[self.key] = u.detach().clone(memory_format=torch.preserve_format)
            else:
                buf = ctx.state[self.key]
                buf.mul_(mu).add_(u, alpha=1.0 - tau)
        else:
            buf = ctx.state_tensor(self.key)
            buf.mul_(mu).add_(u, alpha=1.0 - tau)
        if ctx.hp.get("nesterov", False):
            return u + mu * buf
        return buf


class scale_by_adam(Stage):
    r"""Adam's bias-corrected moment ratio (Kingma & Ba, ICLR 2015), as torch.optim.Adam computes it.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) u_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) u_t^2,\\
        d_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}

    With ``nesterov`` (AdamP's option) the numerator is ``β1 m_t + (1−β1) u_t`` instead of ``m_t``
    (the official adamp 0.3.0 form: both terms divided by the same denominator).
    The learning rate is applied later by ``scale_by_lr``; ``lr/(1−β1^t)`` of the references is
    the same number split differently (equal to float round-off).
    State: ``step`` (CPU float32, as torch), ``exp_avg``, ``exp_avg_sq``.
    """

    name = "scale_by_adam"

    def update(self, u: Tensor, ctx: Context) -> Tensor:
        beta1, beta2 = ctx.hp["betas"]
        t = ctx.step_count()
        m = ctx.state_tensor("exp_avg")
        v = ctx.state_tensor("exp_avg_sq")
        m.mul_(beta1).add_(u, alpha=1.0 - beta1)
        v.mul_(beta2).addcmul_(u, u, value=1.0 - beta2)
        bc1 = 1.0 - beta1**t
        bc2 = 1.0 - beta2**t
        denom = (v.sqrt() / math.sqrt(bc2)).add_(ctx.hp["eps"])
        numer = beta1 * m + (1.0 - beta1) * u if ctx.hp.get("nesterov", False) else m
        return numer / denom / bc1

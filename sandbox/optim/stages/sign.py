"""Lion's sign update (Chen, Liang, Huang, Real, Wang, Pham, Dong, Luong, Hsieh, Lu, Le, NeurIPS 2023,
"Symbolic Discovery of Optimization Algorithms"; official code google/automl/lion)."""
from __future__ import annotations

import torch
from torch import Tensor

from .. import hyper as H
from .base import Context, Stage, StageTraits

LION = "Chen et al., NeurIPS 2023 (Lion); official google/automl lion_pytorch default"


class scale_by_lion(Stage):
    r"""Lion's direction: the sign of an interpolation of the momentum and the gradient.

    .. math::
        c_t = \beta_1 m_{t-1} + (1-\beta_1) u_t,\qquad d_t = \operatorname{sign}(c_t),\qquad
        m_t = \beta_2 m_{t-1} + (1-\beta_2) u_t

    (the paper's Program 1; the momentum is updated AFTER the direction is formed, with the
    second coefficient β2). ``m_0 = 0``. ``sign(0) = 0``: an element whose interpolation is
    exactly zero does not move (as ``torch.sign`` in the official code).

    Every element of ``d`` is ±1 (or 0), so ‖d‖² = number of non-zero elements: the update does
    not depend on the gradient's scale (homogeneity degree 0 in the gradient) and its size per
    element is exactly ``lr``. The temporal filter is the EMA of coefficient β1 seen by the
    current direction (the traits' ``beta``); β2 sets the momentum's memory.
    State: ``exp_avg`` (m_t, official name).
    """

    name = "scale_by_lion"
    reductions = ()  # element-wise (a sharded parameter steps shard by shard)
    hypers = (H.betas((0.9, 0.99), LION, "(beta1, beta2): interpolation of the direction, memory "
                                         "of the momentum"),)
    traits = StageTraits(degree=(0.0, 0.0), momentum="ema", beta=lambda hp: float(hp["betas"][0]),
                         size_law="sign")
    state = {"exp_avg": "the momentum m_t (EMA of the gradient with beta2)"}

    def update(self, u: Tensor, ctx: Context) -> Tensor:
        beta1, beta2 = ctx.hp["betas"]
        m = ctx.state_tensor("exp_avg")
        d = torch.sign(beta1 * m + (1.0 - beta1) * u)
        m.mul_(beta2).add_(u, alpha=1.0 - beta2)
        return d

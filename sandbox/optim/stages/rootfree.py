"""Root-free preconditioning (Lin, Dangel, Eschenhagen, Bae, Turner, Makhzani, ICML 2024,
"Can We Remove the Square-Root in Adaptive Gradient Methods? A Second-Order Perspective";
authors' code yorkerlin/remove-the-square-root).

The preconditioner is ``B·v`` WITHOUT a square root: the loss is a batch mean, so ``B·E[g²]``
estimates the diagonal of the per-example Fisher, and ``m/(B·v)`` is a (diagonal) Newton-like step.
``v`` starts at ``1/B`` so that ``B·v = 1`` at the first step. The damping λ (``eps``) is added to
``B·v``; the authors keep it small (0 < λ < 5e-4) since a large damping turns the rule into SGD
with learning rate lr/λ. The update is homogeneous of degree −1 in the gradient (damping → 0).
"""
from __future__ import annotations

from torch import Tensor

from .. import hyper as H
from .base import Context, Stage, StageTraits

_DAMPING = "damping λ added to B·v (authors keep 0 < λ < 5e-4)"


class scale_by_rootfree_adam(Stage):
    r"""Root-free AdamW's direction (the authors' ``rfadamw``):

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) u_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) u_t^2,
        \quad v_0 = 1/B,\\
        d_t = \frac{m_t/c_1}{B\, v_t / c_2 + \lambda}

    with ``c_1 = 1−β1^t, c_2 = 1−β2^t`` when ``bias_correction`` (off by default, as in the
    authors' code), else 1. State: ``step``, ``exp_avg``, ``exp_avg_sq``.
    """

    name = "scale_by_rootfree_adam"
    reductions = ()  # element-wise
    hypers = (H.betas((0.9, 0.999), ""), H.eps(1e-4, "", _DAMPING), H.batch_size(""),
              H.flag("bias_correction", False, "Adam-style bias correction", ""))
    traits = StageTraits(degree=(-1.0, 0.0), momentum="ema", beta=lambda hp: float(hp["betas"][0]),
                         modelled=True,
                         preconditions=True)
    state = {"step": "step counter t", "exp_avg": "m_t", "exp_avg_sq": "v_t (starts at 1/B)"}

    def update(self, u: Tensor, ctx: Context) -> Tensor:
        beta1, beta2 = ctx.hp["betas"]
        B = ctx.hp["batch_size"]
        t = ctx.step_count()
        m = ctx.state_tensor("exp_avg")
        v = ctx.state_tensor("exp_avg_sq", fill=1.0 / B)
        m.mul_(beta1).add_(u, alpha=1.0 - beta1)
        v.mul_(beta2).addcmul_(u, u, value=1.0 - beta2)
        c1, c2 = (1.0 - beta1**t, 1.0 - beta2**t) if ctx.hp["bias_correction"] else (1.0, 1.0)
        return (m / c1) / ((B / c2) * v + ctx.hp["eps"])


class precondition_rootfree(Stage):
    r"""Root-free RMSProp's preconditioning (the paper's main diagonal method):

    .. math::
        v_t = \alpha v_{t-1} + (1-\alpha) u_t^2,\quad v_0 = 1/B,\quad \alpha = 1 - \text{lr\_cov},
        \qquad d_t = u_t / (B\, v_t + \lambda)

    State: ``exp_avg_sq``. The chain adds the L2 term and the heavy ball after this stage.
    """

    name = "precondition_rootfree"
    reductions = ()  # element-wise
    hypers = (H.lr_cov(1.18e-3, ""), H.eps(1e-4, "", _DAMPING), H.batch_size(""))
    traits = StageTraits(degree=(-1.0, 0.0), preconditions=True, modelled=True)
    state = {"exp_avg_sq": "v_t (starts at 1/B)"}

    def update(self, u: Tensor, ctx: Context) -> Tensor:
        B = ctx.hp["batch_size"]
        rate = ctx.hp["lr_cov"]
        v = ctx.state_tensor("exp_avg_sq", fill=1.0 / B)
        v.mul_(1.0 - rate).addcmul_(u, u, value=rate)
        return u / (B * v + ctx.hp["eps"])

"""LAMB (You et al., ICLR 2020) and LARS (You, Gitman & Ginsburg 2017): layer-wise trust ratios.

**LAMB** (the paper's Algorithm 2, φ = identity): Adam's bias-corrected moments,
``r = m̂/(√v̂ + ε) + λθ``, ``θ ← θ − lr·(‖θ‖/‖r‖)·r`` per tensor (ratio 1 where a norm is 0).
Chain: scale_by_adam → [projection] → λθ → lamb_trust_ratio → −lr. The step has norm exactly
lr·‖θ‖. Divergences of ``pytorch_optimizer.Lamb`` (3.x) from the paper, each tested in
``tests/parity/test_parity_lamb_lars.py``:

- its step is lr/(1 − β1^t) times the trust-ratio update (``apply_adam_debias``; off only with
  ``adam_debias=True``): the relative update is lr/(1 − β1^t), 10·lr at the first step, not lr;
- no bias correction inside r (m/(√v + ε)); with λ = 0 and ε = 0 that does not matter (the trust
  ratio cancels any scalar factor on r), otherwise it changes the weight of λθ against m/√v;
- decoupled decay by default (``weight_decouple=True``: θ ← θ(1 − lr·λ) before the trust
  ratio, which then uses the decayed ‖θ‖); ``weight_decouple=False`` is the paper's r + λθ;
- ‖θ‖ in the ratio is clipped at 10 (φ(z) = min(z, 10)); the paper analyses φ = identity;
- ε is also added to ‖r‖ in the ratio: ‖θ‖/(‖r‖ + ε);
- it adapts every tensor (1-D included); here ``layer_adaptation`` is set per param group.
It equals the paper (and this rule) with ``eps=0``, ``weight_decay=0``, ``adam_debias=True`` and
every ‖θ‖ ≤ 10.

**LARS** (the paper's Algorithm 1): ``local_lr = η·‖θ‖/(‖g‖ + λ‖θ‖)``,
``v ← μ·v + lr·local_lr·(g + λθ)``, ``θ ← θ − v`` (v_0 = 0). Chain: λθ → lars_local_lr → −lr →
heavy ball (b_0 = 0): the learning rate is INSIDE the momentum buffer, as in the paper, so the
stored ``momentum_buffer`` is −v. ``pytorch_optimizer.LARS`` keeps lr outside its buffer
(buffer = v/lr, θ ← θ − lr·buffer): the same steps at a constant lr, different ones when the lr
changes (a schedule: past contributions are rescaled by the new lr there); and it never adapts or
decays vectors (ndim ≤ 1: plain momentum SGD), which here is ``layer_adaptation=False,
weight_decay=0`` for those tensors' group (set per group from the architecture, not by shape).
``project=True`` (default False) adds AdamP's projection after the local lr; as for SGD, the
coupled decay is then projected away on the tensors where it fires (see rules/common.py).

Theory note: both updates are homogeneous of degree 0 in the gradient, but their size is
proportional to ‖θ‖, so on a scale-invariant weight the norm grows geometrically (like the
root-free k = −1 rules, not like Adam): see ``theory.sign_trust``.
"""
from __future__ import annotations

from .. import hyper as H
from ..registry import RuleSpec, register
from ..stages import (add_decayed_weights, chain, heavy_ball, lamb_trust_ratio, lars_local_lr,
                      scale_by_adam, scale_by_lr)
from .common import PROJECTION_DEFAULTS, project_flag, projection

PAPER_LAMB = ("You et al., 'Large Batch Optimization for Deep Learning: Training BERT in 76 "
              "minutes', ICLR 2020")
PAPER_LARS = "You, Gitman & Ginsburg, 'Large Batch Training of Convolutional Networks', 2017"
LAMB = "You et al., ICLR 2020 (LAMB, Algorithm 2)"
LARS = "You, Gitman & Ginsburg 2017 (LARS, Algorithm 1)"


def _lamb(hp):
    # Adam moments (bias-corrected) → [projection] → + λθ → ×‖θ‖/‖r‖ → −lr
    return chain(scale_by_adam(), projection(hp, "eps"), add_decayed_weights(), lamb_trust_ratio(),
                 scale_by_lr())


register(RuleSpec(
    name="lamb", summary="LAMB: Adam direction + λθ, rescaled per tensor to lr·‖θ‖",
    paper=PAPER_LAMB, build=_lamb, flags=(project_flag(False),),
    defaults_from={"lr": (H.REQUIRED, LAMB + ": tuned with the batch size, no default"),
                   "betas": ((0.9, 0.999), LAMB), "eps": (1e-6, LAMB),
                   "weight_decay": (0.0, "pytorch-optimizer Lamb default; the paper's λθ enters the "
                                    "trust ratio (coupled)"),
                   "amsgrad": (False, "torch.optim.Adam option (not in the paper)"),
                   "nesterov": (False, "AdamP's Nesterov form (not in the paper)"),
                   "layer_adaptation": (True, LAMB + "; set False per group to exclude tensors"),
                   **{k: v for k, v in PROJECTION_DEFAULTS.items() if k != "proj_eps"}},
    reference="hand-written paper step; pytorch_optimizer.Lamb where equal (eps=0, λ=0, ‖θ‖ ≤ 10)",
))


def _lars(hp):
    # g + λθ → ×η‖θ‖/(‖g‖ + λ‖θ‖) → −lr → heavy ball (b_0 = 0, lr inside the buffer)
    return chain(add_decayed_weights(), lars_local_lr(), projection(hp), scale_by_lr(),
                 heavy_ball("momentum_buffer", first="zeros"))


register(RuleSpec(
    name="lars", summary="LARS: SGD with momentum and a per-tensor local learning rate",
    paper=PAPER_LARS, build=_lars, flags=(project_flag(False),),
    defaults_from={**PROJECTION_DEFAULTS, "lr": (H.REQUIRED, LARS + ": polynomial schedule, base lr per batch size"),
                   "momentum": (0.9, LARS + " (m = 0.9 in its experiments)"),
                   "dampening": (0.0, LARS + " (no dampening)"),
                   "nesterov": (False, LARS + " (heavy ball)"),
                   "weight_decay": (5e-4, LARS + " (β = 0.0005 for AlexNet-BN); coupled, inside the "
                                    "momentum and the local lr"),
                   "trust_coefficient": (1e-3, LARS + " (η = 0.001)"),
                   "layer_adaptation": (True, LARS + "; set False per group to exclude tensors")},
    reference="pytorch_optimizer.LARS at a constant lr (buffer = −v/lr there); hand-written paper step",
))

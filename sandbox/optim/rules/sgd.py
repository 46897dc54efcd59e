"""SGD and SGDP (torch.optim.SGD; Heo et al., ICLR 2021)."""
from __future__ import annotations

from .. import hyper as H
from ..registry import RuleSpec, register
from ..stages import add_decayed_weights, chain, heavy_ball, scale_by_lr
from .common import ADAMP, PAPER_ADAMP, PROJECTION_DEFAULTS, TORCH, project_flag, projection


# --- SGD family ---------------------------------------------------------------------------------
def _sgd(hp):
    # torch.optim.SGD: g + λθ (coupled L2) → heavy ball (b_1 = g) → [projection] → −lr
    return chain(add_decayed_weights(), heavy_ball("momentum_buffer", first="input"),
                 projection(hp), scale_by_lr())


register(RuleSpec(
    name="sgd", summary="SGD with heavy-ball momentum, dampening, Nesterov and coupled L2",
    paper="Robbins & Monro 1951; Polyak 1964; Sutskever et al., ICML 2013",
    build=_sgd, flags=(project_flag(False),),
    defaults_from={"lr": (1e-3, TORCH), "momentum": (0.0, TORCH), "dampening": (0.0, TORCH),
                   "weight_decay": (0.0, TORCH + "; coupled L2: g ← g + λθ"),
                   "nesterov": (False, TORCH), **PROJECTION_DEFAULTS},
    reference="torch.optim.SGD",
))


def _sgdp(hp):
    # official SGDP: heavy ball (b_0 = 0) → projection (in place into b without Nesterov)
    #                → decoupled decay λ·wd_ratio/(1−μ) → −lr
    return chain(heavy_ball("momentum", first="zeros"), projection(hp, "eps"),
                 add_decayed_weights(scale_by_inverse_one_minus_momentum=True), scale_by_lr())


register(RuleSpec(
    name="sgdp", summary="SGD with momentum + radial projection (official SGDP)", paper=PAPER_ADAMP,
    build=_sgdp, flags=(project_flag(True),),
    defaults_from={"lr": (H.REQUIRED, ADAMP), "momentum": (0.0, ADAMP), "dampening": (0.0, ADAMP),
                   "weight_decay": (0.0, ADAMP + "; decoupled, θ ← θ(1 − lr·λ·factor/(1 − momentum))"),
                   "nesterov": (False, ADAMP), "eps": (1e-8, ADAMP),
                   "delta": PROJECTION_DEFAULTS["delta"], "wd_ratio": PROJECTION_DEFAULTS["wd_ratio"],
                   "project_momentum": (True, "adamp 0.3.0 SGDP: the in-place projection of the buffer")},
    reference="adamp.SGDP (0.3.0)",
))

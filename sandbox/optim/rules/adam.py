"""Adam, AdamW and AdamP (torch.optim.Adam/AdamW; Heo et al., ICLR 2021)."""
from __future__ import annotations

from ..registry import RuleSpec, register
from ..stages import add_decayed_weights, chain, scale_by_adam, scale_by_lr
from .common import ADAMP, PAPER_ADAMP, PROJECTION_DEFAULTS, TORCH, project_flag, projection


# --- Adam family --------------------------------------------------------------------------------
def _adam(hp):
    # torch.optim.Adam: g + λθ (coupled L2) → Adam moments → [projection] → −lr
    return chain(add_decayed_weights(), scale_by_adam(), projection(hp, "eps"), scale_by_lr())


def _adamw(hp):
    # torch.optim.AdamW / official AdamP: Adam moments → [projection] → decoupled decay → −lr
    return chain(scale_by_adam(), projection(hp, "eps"), add_decayed_weights(), scale_by_lr())


_ADAM = {"lr": (1e-3, TORCH), "betas": ((0.9, 0.999), TORCH), "eps": (1e-8, TORCH),
         "amsgrad": (False, TORCH), "nesterov": (False, ADAMP + " (its Nesterov form)"),
         "delta": PROJECTION_DEFAULTS["delta"], "wd_ratio": PROJECTION_DEFAULTS["wd_ratio"],
         "project_momentum": PROJECTION_DEFAULTS["project_momentum"]}
register(RuleSpec(
    name="adam", summary="Adam with coupled L2", paper="Kingma & Ba, 'Adam', ICLR 2015",
    build=_adam, flags=(project_flag(False),),
    defaults_from={**_ADAM, "weight_decay": (0.0, TORCH + "; coupled L2: g ← g + λθ")},
    reference="torch.optim.Adam",
))
register(RuleSpec(
    name="adamw", summary="Adam with decoupled weight decay",
    paper="Loshchilov & Hutter, 'Decoupled Weight Decay Regularization', ICLR 2019",
    build=_adamw, flags=(project_flag(False),),
    defaults_from={**_ADAM, "weight_decay": (1e-2, TORCH + "; decoupled: θ ← θ(1 − lr·λ·factor)")},
    reference="torch.optim.AdamW",
))
register(RuleSpec(
    name="adamp", summary="AdamW + radial projection (official AdamP)", paper=PAPER_ADAMP,
    build=_adamw, flags=(project_flag(True),),
    defaults_from={**_ADAM, "lr": (1e-3, ADAMP), "betas": ((0.9, 0.999), ADAMP),
                   "eps": (1e-8, ADAMP), "nesterov": (False, ADAMP),
                   "weight_decay": (0.0, ADAMP + "; decoupled: θ ← θ(1 − lr·λ·factor)")},
    reference="adamp.AdamP (0.3.0)", base="adamw",
))

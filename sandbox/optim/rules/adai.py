"""Adai and AdaiW (Xie et al., ICML 2022), and their projected forms."""
from __future__ import annotations

from .. import hyper as H
from ..registry import RuleSpec
from ..stages import adaptive_inertia, add_decayed_weights, chain, scale_by_lr
from .common import ADAI, PAPER_ADAI, PROJECTION_DEFAULTS, _variants, project_flag, projection


# --- Adai ---------------------------------------------------------------------------------------
def _adai(hp):
    # Adai: [g + λθ] → adaptive inertia (two passes) → [projection] → [decoupled decay] → −lr
    if hp["decoupled"]:
        return chain(adaptive_inertia(), projection(hp), add_decayed_weights(), scale_by_lr())
    return chain(add_decayed_weights(), adaptive_inertia(), projection(hp), scale_by_lr())


_ADAI = {"lr": (H.REQUIRED, ADAI + " (SGD-scale; e.g. 0.1-1.0)"), "betas": ((0.1, 0.99), ADAI),
         "eps": (1e-3, ADAI), "weight_decay": (0.0, ADAI + "; decoupled (AdaiW) or coupled L2 (Adai)"),
         **PROJECTION_DEFAULTS}
for _name, _dec in (("adai", False), ("adaiw", True)):
    _variants(RuleSpec(
        name=_name, summary="Adaptive inertia" + (" with decoupled decay" if _dec else ""),
        paper=PAPER_ADAI, build=_adai,
        flags=(H.flag("decoupled", _dec, "decoupled weight decay (AdaiW)", ADAI, structural=True),
               project_flag(False)),
        defaults_from=_ADAI, reference="zeke-xie/adaptive-inertia-adai Adai/AdaiW",
    ), _name + "p")

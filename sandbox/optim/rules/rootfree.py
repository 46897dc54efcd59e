"""Root-free AdamW and RMSProp (Lin et al., ICML 2024), and their projected forms."""
from __future__ import annotations

from .. import hyper as H
from ..registry import RuleSpec
from ..stages import add_decayed_weights, chain, heavy_ball, precondition_rootfree, scale_by_lr, scale_by_rootfree_adam
from .common import PAPER_RF, PROJECTION_DEFAULTS, RF, RF_TUNED, _variants, project_flag, projection


# --- Root-free ----------------------------------------------------------------------------------
def _rfadamw(hp):
    # θ(1 − lr·λ) and m/(B·v + damping): root-free moments → [projection] → decoupled decay → −lr
    return chain(scale_by_rootfree_adam(), projection(hp), add_decayed_weights(), scale_by_lr())


def _rfrmsprop(hp):
    # d = g/(B·v + damping) + λθ → heavy ball (b_0 = 0, no dampening) → [projection] → −lr
    return chain(precondition_rootfree(), add_decayed_weights(),
                 heavy_ball("momentum_buffer", first="zeros"), projection(hp), scale_by_lr())


_variants(RuleSpec(
    name="rfadamw", summary="Root-free AdamW (no square root; preconditioner B·v)", paper=PAPER_RF,
    build=_rfadamw, flags=(project_flag(False),),
    defaults_from={"lr": (1e-3, RF), "betas": ((0.9, 0.999), RF), "eps": (1e-4, RF),
                   "weight_decay": (0.0, RF + "; decoupled: θ ← θ(1 − lr·λ·factor)"),
                   "batch_size": (H.REQUIRED, RF), "bias_correction": (False, RF),
                   **PROJECTION_DEFAULTS},
    reference="hand-computed from the paper's equations",
), "rfadamwp")
_variants(RuleSpec(
    name="rfrmsprop", summary="Root-free RMSProp with heavy-ball momentum", paper=PAPER_RF,
    build=_rfrmsprop, flags=(project_flag(False),),
    defaults_from={"lr": (4.98e-3, RF_TUNED), "momentum": (0.961, RF_TUNED),
                   "lr_cov": (1.18e-3, RF_TUNED), "eps": (1e-4, RF),
                   "weight_decay": (0.0, RF + "; L2 added after preconditioning: d = g/(B·v + λ) + wd·θ"),
                   "batch_size": (H.REQUIRED, RF), "dampening": (0.0, RF + " (no dampening)"),
                   "nesterov": (False, RF + " (heavy ball, no Nesterov)"), **PROJECTION_DEFAULTS},
    reference="hand-computed from the paper's equations",
), "rfrmspropp")

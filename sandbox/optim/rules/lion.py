"""Lion (Chen et al., NeurIPS 2023), and its projected form."""
from __future__ import annotations

from ..registry import RuleSpec, register
from ..stages import add_decayed_weights, chain, scale_by_lion, scale_by_lr
from .common import PROJECTION_DEFAULTS, project_flag, projection

PAPER_LION = "Chen et al., 'Symbolic Discovery of Optimization Algorithms', NeurIPS 2023"
LION = "Chen et al., NeurIPS 2023; official google/automl lion_pytorch.py default"


def _lion(hp):
    # sign(β1·m + (1−β1)·g) → [projection] → decoupled decay θ(1 − lr·λ) → −lr
    return chain(scale_by_lion(), projection(hp), add_decayed_weights(), scale_by_lr())


register(RuleSpec(
    name="lion", summary="Lion: sign of an interpolated momentum, decoupled decay",
    paper=PAPER_LION, build=_lion, flags=(project_flag(False),),
    defaults_from={"lr": (1e-4, LION), "betas": ((0.9, 0.99), LION),
                   "weight_decay": (0.0, LION + " (the paper uses a 3-10x larger λ than for AdamW); "
                                    "decoupled: θ ← θ(1 − lr·λ·factor)"),
                   **PROJECTION_DEFAULTS},
    reference="pytorch_optimizer.Lion (equal in float64; tests/parity/test_parity_lion.py)",
))

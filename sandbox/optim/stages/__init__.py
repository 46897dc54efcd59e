"""Reusable stages of update rules (see :mod:`sandbox.optim.stages.base` for the interface)."""
from .adai import adaptive_inertia
from .base import Context, Flow, Stage, StageTraits, add_decayed_weights, chain, run_chain, scale_by_lr
from .moments import heavy_ball, scale_by_adam
from .projection import radial_projection
from .rootfree import precondition_rootfree, scale_by_rootfree_adam
from .corrected_decay import corrected_decay
from .rotational import rotate, rotational_decay
from .sign import scale_by_lion
from .trust_ratio import lamb_trust_ratio, lars_local_lr

__all__ = [
    "Context", "Flow", "Stage", "StageTraits", "chain", "run_chain", "scale_by_lr",
    "add_decayed_weights", "heavy_ball", "scale_by_adam", "adaptive_inertia",
    "scale_by_rootfree_adam", "precondition_rootfree", "radial_projection",
    "scale_by_lion", "lamb_trust_ratio", "lars_local_lr", "rotate", "rotational_decay", "corrected_decay",
]

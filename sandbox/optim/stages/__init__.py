"""Reusable stages of update rules (see :mod:`sandbox.optim.stages.base` for the interface)."""
from .adai import adaptive_inertia
from .base import Context, Flow, Stage, StageTraits, add_decayed_weights, chain, run_chain, scale_by_lr
from .moments import heavy_ball, scale_by_adam
from .projection import radial_projection
from .rootfree import precondition_rootfree, scale_by_rootfree_adam

__all__ = [
    "Context", "Flow", "Stage", "StageTraits", "chain", "run_chain", "scale_by_lr",
    "add_decayed_weights", "heavy_ball", "scale_by_adam", "adaptive_inertia",
    "scale_by_rootfree_adam", "precondition_rootfree", "radial_projection",
]

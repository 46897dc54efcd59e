"""Reusable stages of update rules (see :mod:`sandbox.optim.stages.base` for the interface)."""
from .adai import adaptive_inertia
from .base import Context, Stage, add_decayed_weights, chain, scale_by_lr
from .moments import heavy_ball, scale_by_adam
from .projection import radial_projection
from .rootfree import precondition_rootfree, scale_by_rootfree_adam

__all__ = [
    "Context", "Stage", "chain", "scale_by_lr", "add_decayed_weights", "heavy_ball",
    "scale_by_adam", "adaptive_inertia", "scale_by_rootfree_adam", "precondition_rootfree",
    "radial_projection",
]

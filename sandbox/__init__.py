"""Optimizer research sandbox: momentum optimizers on scale-invariant weights.

The optimizer library is :mod:`sandbox.optim`; its public names are re-exported here.

>>> import sandbox
>>> opt = sandbox.create("adamp", model.parameters(), lr=1e-3)      # doctest: +SKIP
>>> sandbox.available()                                              # doctest: +SKIP
>>> sandbox.info("adai").defaults                                    # doctest: +SKIP
"""
import sys as _sys

from .optim import (NonFiniteGradientError, RuleOptimizer, RuleSpec, available, create, get_rule,
                    info, register, stages)

# ``import sandbox.stages`` / ``from sandbox.stages import heavy_ball`` keep working: the stages
# are one module, reachable under both names.
_sys.modules.setdefault(__name__ + ".stages", stages)

__all__ = ["create", "available", "info", "get_rule", "register", "RuleSpec", "RuleOptimizer",
           "NonFiniteGradientError", "stages"]
__version__ = "0.1.0"

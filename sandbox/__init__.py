"""Optimizer research sandbox: momentum optimizers on scale-invariant weights.

>>> import sandbox
>>> opt = sandbox.create("adamp", model.parameters(), lr=1e-3)      # doctest: +SKIP
>>> sandbox.available()                                              # doctest: +SKIP
>>> sandbox.info("adai").defaults                                    # doctest: +SKIP
"""
from . import rules as _rules  # noqa: F401  (registers the catalogue)
from .optimizer import NonFiniteGradientError, RuleOptimizer
from .registry import RuleSpec, available, create, get_rule, info

__all__ = ["create", "available", "info", "get_rule", "RuleSpec", "RuleOptimizer",
           "NonFiniteGradientError"]
__version__ = "0.1.0"

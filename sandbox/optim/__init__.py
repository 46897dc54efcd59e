"""The optimizer library: stages, rules, the registry and the ``torch.optim`` adapter.

Everything a user needs to run or define an update rule lives here, apart from the lab
(toys, problems, training, probes, compare, escape, verify, benchmarks), which imports it and
is never imported by it.

>>> from sandbox import optim
>>> opt = optim.create("adamp", model.parameters(), lr=1e-3)        # doctest: +SKIP
"""
from . import rules as _rules  # noqa: F401  (registers the catalogue)
from . import stages
from .optimizer import NonFiniteGradientError, RuleOptimizer
from .registry import RuleSpec, available, create, get_rule, info, register

__all__ = ["create", "available", "info", "get_rule", "register", "RuleSpec", "RuleOptimizer",
           "NonFiniteGradientError", "stages"]

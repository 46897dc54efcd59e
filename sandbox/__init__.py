"""Optimizer research sandbox: momentum optimizers on scale-invariant weights.

The optimizer library is :mod:`sandbox.optim`; its public names are re-exported here, imported
on first use (so that ``python -m sandbox --help`` answers without importing torch).

>>> import sandbox
>>> opt = sandbox.create("adamp", model.parameters(), lr=1e-3)      # doctest: +SKIP
>>> sandbox.available()                                              # doctest: +SKIP
>>> sandbox.info("adai").defaults                                    # doctest: +SKIP
"""
import importlib as _importlib

__all__ = ["create", "available", "info", "get_rule", "register", "RuleSpec", "RuleOptimizer",
           "NonFiniteGradientError", "stages"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in __all__:
        value = getattr(_importlib.import_module(".optim", __name__), name)
        globals()[name] = value  # once imported, an ordinary attribute
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)

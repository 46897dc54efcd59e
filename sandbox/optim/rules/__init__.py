"""The catalogue of named rules, one module per paper family (registered on import, in order).

A rule states its chain, its structural flags and the defaults its paper gives (with their
source); its hyperparameters, metadata and theory traits are derived from the chain
(:mod:`sandbox.optim.registry`). A user's own rule is registered the same way, from any module.
"""
# registered on import, in this order (the order of ``available()`` and ``python -m sandbox list``)
from . import sgd  # noqa: F401,I001
from . import adam  # noqa: F401
from . import adai  # noqa: F401
from . import rootfree  # noqa: F401
from . import lion  # noqa: F401
from . import lamb  # noqa: F401
from . import rotational  # noqa: F401
from . import corrected  # noqa: F401
from .common import PROJECTION_DEFAULTS, project_flag, projection

__all__ = ["PROJECTION_DEFAULTS", "project_flag", "projection"]

"""``sandbox.stages``: the stages of :mod:`sandbox.optim.stages`, under their historical name.

The very same classes (``sandbox.stages.heavy_ball is sandbox.optim.stages.heavy_ball``): this
module only re-exports them.
"""
from .optim.stages import *  # noqa: F401,F403
from .optim.stages import __all__  # noqa: F401

"""The figure style every sandbox plot uses, applied per call (never to the global state).

Library code must not call ``matplotlib.use`` or ``seaborn.set_theme``: in a Jupyter kernel that
switches inline figures off or restyles the user's own plots. Matplotlib already falls back to
the Agg backend on a machine without a display.
"""
from __future__ import annotations

import functools


def styled(context: str = "notebook"):
    """Decorator: run a plotting function under seaborn's whitegrid style and ``context``."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            import seaborn as sns

            with sns.axes_style("whitegrid"), sns.plotting_context(context):
                return fn(*args, **kwargs)

        return wrapper

    return decorate

"""``performance_profile.png``: the Dolan–Moré profiles (:mod:`.profile`) of every rule over the
problems of a ``compare --problems`` run, in training steps and in training seconds to target;
one colour per rule (:mod:`.palette`), the conventions of :mod:`sandbox.plotting`."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..plotting import plain_log_ticks, styled
from .palette import rule_colors
from .profile import MEASURES, profile_points
from .store import write_atomic


@styled()
def profile_figure(table: pd.DataFrame, path: str | Path) -> Path:
    """Draw the profiles of ``table`` (:func:`.profile.profile_table`) to ``path``."""
    import matplotlib.pyplot as plt

    path = Path(path)
    rules = list(dict.fromkeys(table["rule"]))
    colours = rule_colors(rules)
    n = table["problem"].nunique()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained", sharey=True)
    for ax, (measure, label) in zip(axes, MEASURES.items()):
        pts = profile_points(table, measure)
        finite = table[f"ratio_{measure}"][np.isfinite(table[f"ratio_{measure}"])]
        tau_max = max(2.0, float(finite.max()) * 1.5 if len(finite) else 2.0)
        for i, rule in enumerate(rules):
            p = pts[pts["rule"] == rule]
            x = list(p["tau"]) + [tau_max]
            y = list(p["rho"]) + [p["rho"].iloc[-1] if len(p) else 0.0]
            # a small vertical offset per rule keeps coinciding step lines apart
            ax.step(x, np.asarray(y) + 0.008 * (i - (len(rules) - 1) / 2), where="post",
                    color=colours[rule], lw=1.8, label=rule)
        ax.set(xscale="log", xlim=(1, tau_max), ylim=(-0.04, 1.04),
               xlabel=f"τ: within a factor τ of the best rule ({label})",
               ylabel=f"ρ(τ): fraction of the {n} problem(s)", title=label)
        plain_log_ticks(ax, "x")
    axes[1].legend(loc="lower right")
    fig.suptitle("performance profiles (Dolan & Moré 2002): higher and further left is better; "
                 "a rule that never reaches a target stays below 1")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path

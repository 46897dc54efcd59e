"""The figure of the ``schedules`` family, drawn from its saved ``curves.csv``: one row of panels
per quantity (r_t, Δ_t, ‖g_t‖/‖w_t‖), one column per rule; predicted (line, drawn above) and
measured (markers, rms over replicas) against the step, with γ_t/γ_max on a twin axis."""
from __future__ import annotations

import pandas as pd

from sandbox.verify import figures

LABELS = {"norm": "rms ‖w_t‖", "delta": "rms Δ_t (rad)", "grad_ratio": "rms ‖g_t‖/‖w_t‖"}
MAX_RULES = 7


def plot_trajectories(curves: pd.DataFrame, path):
    from matplotlib.lines import Line2D

    rules = list(dict.fromkeys(curves["rule"]))[:MAX_RULES]
    fig, axes = figures.grid(3, len(rules), width=2.6, height=2.2)
    for j, rule in enumerate(rules):
        part = curves[curves["rule"] == rule]
        for i, q in enumerate(LABELS):
            ax = axes[i, j]
            c = part[part["quantity"] == q]
            c = c[c["measured"] > 0]
            figures.predicted_vs_measured(ax, c, logx=False, logy=q == "delta", keys=("rule",),
                                          legend=False, ylabel=LABELS[q] if j == 0 else "",
                                          xlabel="step t" if i == 2 else "")
            if i == 0:
                ax.set_title(rule)
                twin = ax.twinx()
                twin.plot(c["step"], c["gamma"] / c["gamma"].max(), color="0.6", lw=0.8, zorder=1)
                twin.set_ylim(0, 1.05)
                twin.set_yticks([])
                twin.tick_params(axis="x", bottom=False, labelbottom=False)  # x is the panel's
    handles = [Line2D([], [], color="0.25", lw=1.6, label="predicted (theory.schedules)")] \
        if curves["predicted"].notna().any() else []
    handles += [Line2D([], [], color="0.25", ls="none", marker="o", mfc="none",
                       label="measured: rms over replicas"),
                Line2D([], [], color="0.6", lw=0.8, label="γ_t/γ_max (top row)")]
    fig.legend(handles=handles, loc="outside lower center",
               ncol=min(len(handles), max(1, len(rules) - 1)))
    return figures.save(fig, path)

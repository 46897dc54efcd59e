"""The figures of the ``asymptotes`` family (theory §2), drawn from its saved ``curves.csv``."""
from __future__ import annotations

import pandas as pd

from sandbox.verify import figures


def plot_power(power: pd.DataFrame, path):
    """Δ_t per rule (k > −1): measured rms (markers, band 5–95% over replicas), the mean-field
    prediction (line) and the asymptote 1/sqrt((k+1)Mt) (dashed)."""
    from matplotlib.lines import Line2D

    labels = list(dict.fromkeys(power["label"]))
    ncols = min(4, len(labels))
    fig, axes = figures.grid((len(labels) + ncols - 1) // ncols, ncols, width=3.0, height=2.5)
    for ax, lab in zip(axes.flat, labels):
        part = power[power["label"] == lab].sort_values("step")
        figures.predicted_vs_measured(ax, part.assign(rule=lab), keys=("rule",), legend=False,
                                      ylabel="rms angular step Δ_t (rad)")
        ax.plot(part["step"], part["asymptote"], "--", color="k", lw=1, zorder=3)
        ax.set_title(lab)
    for ax in list(axes.flat)[len(labels):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color="0.25", ls="-", lw=1.6, label="predicted: mean field"),
               Line2D([], [], color="k", ls="--", lw=1, label="predicted: 1/sqrt((k+1)Mt)"),
               Line2D([], [], color="0.25", ls="none", marker="o", mfc="none",
                      label="measured: rms over replicas")]
    fig.legend(handles=handles, loc="outside lower center", ncol=3)
    return figures.save(fig, path)


def plot_rootfree(rfc: pd.DataFrame, path):
    """Root-free rules: the constant Δ without damping, and the damping crossover in r."""
    from matplotlib.lines import Line2D

    fig, axes = figures.grid(1, 2, width=3.8, height=3.4)
    geo = rfc[rfc["kind"] == "geometric"].assign(rule=lambda f: f["label"])
    figures.predicted_vs_measured(axes[0, 0], geo, ylabel="rms angular step Δ_t (rad)",
                                  keys=("rule",), legend=False)
    for _, g in geo.groupby("label"):
        axes[0, 0].plot(g["step"], g["asymptote"], ":", color="0.4", lw=1, zorder=3)
    axes[0, 0].set_title("no damping: constant Δ")
    cross = rfc[rfc["kind"] == "crossover"].assign(rule=lambda f: f["label"])
    figures.predicted_vs_measured(axes[0, 1], cross, x="norm", xlabel="weight norm ‖w‖ (units of ‖w_0‖)",
                                  ylabel="rms angular step Δ (rad)", keys=("rule",), legend=False)
    axes[0, 1].set_title("with damping: crossover in ‖w‖")
    from sandbox.plotting import colors

    series = list(colors(list(dict.fromkeys(geo["label"])) + list(dict.fromkeys(cross["label"]))).items())
    handles = [Line2D([], [], color="0.25", ls="-", lw=1.6, label="predicted (lag-corrected)"),
               Line2D([], [], color="0.4", ls=":", lw=1, label="catalogue value (v converged)"),
               Line2D([], [], color="0.25", ls="none", marker="o", mfc="none", label="measured")]
    handles += [Line2D([], [], color=col, lw=6, alpha=0.8, label=lab) for lab, col in series[:6]]
    fig.legend(handles=handles, loc="outside lower center", ncol=3)
    return figures.save(fig, path)


def plot_norm(norm: pd.DataFrame, path):
    """‖w_t‖ per run (rms over replicas, band 5–95%): power-law or geometric growth."""
    from sandbox.plotting import colors, style_legend

    fig, axes = figures.grid(1, 1, width=7.0, height=3.6)
    ax = axes[0, 0]
    palette = colors(norm["label"])
    for lab, g in norm.groupby("label", sort=False):
        g = g.sort_values("step")
        ax.fill_between(g["step"], g["measured_q05"], g["measured_q95"], color=palette[lab],
                        alpha=0.12, lw=0, zorder=1)
        ax.plot(g["step"], g["measured"], "o", ms=2, color=palette[lab], zorder=2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("weight norm ‖w_t‖ (units of ‖w_0‖)")
    ax.set_title("norm growth on the noise toy")
    style_legend(ax, list(palette.items())[:10], entries=(("measured (markers, 5–95% band)",
                                                            {"ls": "none", "marker": "o"}),),
                 outside=True)
    return figures.save(fig, path)

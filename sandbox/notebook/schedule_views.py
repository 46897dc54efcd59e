r"""Notebook 06's figures and verdict rows: the toy side by side (AdamW, AdamC, AdamP, SGD, SGDC),
the BN net per layer, and the verdict rows, which are the ``verify`` family's own
(:mod:`sandbox.verify.families.schedules` and :mod:`~sandbox.verify.families.schedules_nets`):
one verdict rule for the report and the notebook.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from .schedule_panel import DELTA_FLOOR, colors_of, family
from .style import use_style


def draw_toy_comparison(runs: dict):
    """‖g_t‖/‖w_t‖ of every rule of ``runs`` (Adam family left, SGD family middle; markers
    measured, lines of the rule's colour with a white edge: predicted, above), and Δ_t/γ_t
    relative to its value at the end of the warm-up (right; flat ⇔ Δ_t ∝ γ_t). Returns the figure."""
    import matplotlib.pyplot as plt

    from sandbox.plotting import MEASURED, predicted_kw, thin

    use_style()
    colors = colors_of(list(runs))
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 4.0), layout="constrained")
    for rule, run in runs.items():
        fam = family(rule)
        ax = axes[0] if fam == "adam" else axes[1]
        c = colors[rule]
        mk = {**MEASURED, "ms": 4.5, "alpha": 1.0, "mec": tuple(0.55 * x for x in c[:3])}
        m = run["measured"]
        part = m[m["quantity"] == "grad_ratio"].sort_values("step")
        ax.plot(*thin(part["step"], part["rms"], log=False), color=c, **mk)
        if run["predicted"] is not None:
            pp = run["predicted"]
            pp = pp[(pp["quantity"] == "grad_ratio") & (pp["step"] >= 1)].sort_values("step")
            ax.plot(pp["step"], pp["predicted"], **predicted_kw(c, zorder=4))
        sched = run["sched"]
        start = int(sched.params.get("warmup", 0)) + 1
        part = m[(m["quantity"] == "delta") & (m["step"] >= start)
                 & (m["gamma"] >= DELTA_FLOOR * 10 * sched.peak)].sort_values("step")
        norm = part["rms"].to_numpy() / part["gamma"].to_numpy()
        ref = float(np.median(norm[:5]))  # without a prediction: the measured start
        if run["predicted"] is not None:
            pp = run["predicted"]
            pp = pp[(pp["quantity"] == "delta") & (pp["step"] >= start)
                    & (pp["gamma"] >= DELTA_FLOOR * 10 * sched.peak)].sort_values("step")
            v = pp["predicted"].to_numpy() / pp["gamma"].to_numpy()
            ref = float(v[0])  # both relative to the PREDICTED value at the peak
            axes[2].plot(pp["step"], v / ref, **predicted_kw(c, zorder=4))
        axes[2].plot(*thin(part["step"], norm / ref, log=False), color=c, **mk)
    axes[0].set(title="Adam family", xlabel="step t", ylabel="‖g_t‖ / ‖w_t‖")
    axes[1].set(title="SGD with momentum", xlabel="step t", ylabel="‖g_t‖ / ‖w_t‖")
    axes[2].set(title="Δ_t/γ_t (flat ⇔ Δ_t ∝ γ_t)", xlabel="step t (while γ_t ≥ 10% of peak)",
                ylabel="Δ_t/γ_t ÷ its predicted value at the peak")
    from sandbox.plotting import style_legend

    style_legend(axes[2], list(colors.items()), outside=True)
    return fig


# --- notebook 06: the BN net side by side ---------------------------------------------------------
def draw_net_series(table: pd.DataFrame, window: Optional[int] = None):
    """Per rule (columns): each scale-invariant layer's ‖g‖/‖w‖ smoothed over ``window`` steps
    (top) and Δ_t (bottom, log; rms per window), the line the mean over seeds and the band the
    seeds' range (seaborn). Returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from sandbox.experiments.schedule_nets import default_window, smoothed_ratio
    from sandbox.plotting import colors

    use_style()
    window = default_window(table) if window is None else window
    s = smoothed_ratio(table, window)
    rules = list(dict.fromkeys(table["rule"]))
    palette = colors(sorted(table["layer"].unique()))
    fig, axes = plt.subplots(2, len(rules), figsize=(3.3 * len(rules) + 1.6, 5.6), sharex=True,
                             squeeze=False, layout="constrained")
    binned = table.assign(bin=(table["step"] // window) * window + window / 2)
    dl = (binned.groupby(["rule", "seed", "layer", "bin"])["delta"]
          .apply(lambda v: float(np.sqrt(np.mean(np.square(v))))).reset_index())
    for j, rule in enumerate(rules):
        top, bottom = axes[0, j], axes[1, j]
        sns.lineplot(data=s[s["rule"] == rule], x="step", y="grad_ratio_smooth", hue="layer",
                     palette=palette, errorbar=("pi", 100), ax=top, legend=False)
        sns.lineplot(data=dl[dl["rule"] == rule], x="bin", y="delta", hue="layer",
                     palette=palette, errorbar=("pi", 100), marker="o", ax=bottom, legend=False)
        top.set(title=rule, xlabel="", ylabel="‖g‖/‖w‖ (smoothed)" if j == 0 else "")
        bottom.set(yscale="log", xlabel="step t", ylabel="Δ_t (rad)" if j == 0 else "")
    from sandbox.plotting import style_legend

    style_legend(axes[0, -1], list(palette.items()), outside=True, title="layer",
                 entries=(("mean over seeds", {"ls": "-", "color": "0.25"}),))
    fig.suptitle(f"scale-invariant layers, cosine schedule; ‖g‖/‖w‖ smoothed over {window} "
                 "steps; bands: range over seeds")
    return fig


def draw_late_rises(rises: pd.DataFrame):
    """The late rise of ‖g‖/‖w‖ per rule and layer: one marker per seed, the mean with the
    seeds' 95% t interval; a line at 1 (flat). Returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from sandbox.plotting import colors

    from .verdicts import t_band

    use_style()
    palette = colors(sorted(rises["layer"].unique()))
    fig, ax = plt.subplots(figsize=(7.0, 3.6), layout="constrained")
    ax.axhline(1.0, color="0.3", lw=1, ls="--", zorder=0)
    sns.stripplot(data=rises, x="rule", y="late_rise", hue="layer", palette=palette, dodge=True,
                  alpha=0.6, size=5, ax=ax, legend=False, zorder=1)
    sns.pointplot(data=rises, x="rule", y="late_rise", hue="layer", palette=palette, dodge=0.4,
                  errorbar=t_band, linestyle="none", markers="D", capsize=0.1, ax=ax, zorder=3)
    ax.set(xlabel="", ylabel="late rise of ‖g‖/‖w‖\n(max late / min from peak)")
    ax.legend(title="layer (mean ± 95% t over seeds)", loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def toy_rows(runs: dict, out) -> list:
    """Verdict rows of the toy runs (:func:`~sandbox.notebook.schedule_panel.toy_runs`, recorded
    every step) by the ``schedules`` family's rule (smoothed worst deviation of r, Δ, ‖g‖/‖w‖; the
    late rise; Δ_t ∝ γ_t for corrected rules; jackknife intervals over replica groups), plus
    Defazio's steady state of plain SGD (``schedule.sgd_steady``, its run cached under ``out``)."""
    from pathlib import Path

    from sandbox.verify.base import VerifyConfig
    from sandbox.verify.families import schedules as fam

    cfg = VerifyConfig(quick=True, out=Path(out))
    rows = []
    for rule, run in runs.items():
        if run["traj"] is None:
            continue
        job = {"rule": rule, "sched": run["sched"], "hp": run["hp"], "d": run["d"],
               "r0": run["r0"], "beta_mem": fam.setting(rule, len(run["sched"].gamma))["beta_mem"],
               "traj": run["traj"]}
        rows += fam.rule_rows(cfg, job, run["table"])
    return rows + fam.sgd_steady_rows(cfg)


def net_rows(table: pd.DataFrame, steps: int) -> list:
    """Verdict rows of the BN net (:func:`sandbox.experiments.schedule_nets.run_schedule_nets`
    over ``steps`` steps) by the ``schedules`` family's rule: per layer the late rise of ‖g‖/‖w‖
    predicted given the measured scale-free gradient, and the final norm (15%; the constant-G
    form REPORTED)."""
    from sandbox.experiments.schedule_nets import net_schedule
    from sandbox.verify.families.schedules_nets import table_rows

    return table_rows(table, net_schedule(steps=steps))

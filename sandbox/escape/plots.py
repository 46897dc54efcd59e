"""Figures drawn from the saved escape tables (seaborn): −log Γ against 1/k, B and 1/η per rule.

Each panel: the measured −log Γ with its 95% interval (points, error bars and a shaded band), the
three Kramers-corrected law fits (:mod:`sandbox.escape.laws`; 1/k-type solid, 1/√k-type dashed,
k⁰-type dotted grey; drawn back in −log Γ units, so the curves include the attempt frequency's
log term; R² of the corrected regression), and the theory's Kramers prediction (dotted; :meth:`sandbox.escape.arms.Arm.
predicted_neg_log_rate`). Rows of the rates table with fewer than ``MIN_EVENTS`` escapes are
drawn hollow (not fitted).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..plotting import PALETTE, predicted_kw, save, styled

from .laws import LAWS, MIN_EVENTS, OTHERS, VARIABLE_COLUMN, kramers_offset, regressor, weighted_line

AXIS = {
    "k": ("1/k  (H_a = k·h0; dimensionless)", lambda v: 1.0 / v),
    "B": ("batch size B", lambda v: v),
    "eta": ("1/η  (η = learning rate)", lambda v: 1.0 / v),
}


def _sweeps(rates: pd.DataFrame, var: str):
    col = VARIABLE_COLUMN[var]
    keys = ["rule", "problem"] + list(OTHERS[var])
    for key, d in rates.groupby(keys, sort=False):
        if d[col].nunique() >= 2:
            yield key, d.sort_values(col)


FIT_STYLE = {1.0: ("-", PALETTE[1]), 0.5: ("--", PALETTE[2]), 0.0: (":", "0.45")}


def _panel(ax, d: pd.DataFrame, var: str) -> None:
    col = VARIABLE_COLUMN[var]
    label, tx = AXIS[var]
    v = d[col].to_numpy(float)
    x = tx(v)
    y = d["neg_log_rate"].to_numpy(float)
    lo, hi = d["nlr_lo"].to_numpy(float), d["nlr_hi"].to_numpy(float)
    ok = (d["n_escaped"] >= MIN_EVENTS).to_numpy() & np.isfinite(y)
    ax.errorbar(x[ok], y[ok], yerr=[y[ok] - lo[ok], hi[ok] - y[ok]], fmt="o", color=PALETTE[0],
                ms=4.5, mfc="white", mew=1.2, capsize=2, zorder=2)
    if (~ok).any():  # too few escapes to fit: the point estimate (or the lower bound), hollow
        ax.plot(x[~ok], np.where(np.isfinite(y[~ok]), y[~ok], lo[~ok]), "x", color=PALETTE[0],
                zorder=2)
    grid = np.geomspace(v.min(), v.max(), 60)
    n = d["n_escaped"].to_numpy(float)[ok]
    for law, alpha in LAWS[var].items():
        if ok.sum() < 2:
            continue
        yy = y[ok] + kramers_offset(var, v[ok], alpha)
        x_fit = regressor(var, v[ok], alpha) if alpha != 0 else np.zeros(ok.sum())
        fit = weighted_line(x_fit, yy, n)
        slope = fit["slope"] if alpha != 0 else 0.0
        line = fit["intercept"] + slope * regressor(var, grid, alpha) - kramers_offset(var, grid, alpha)
        ls, color = FIT_STYLE[alpha]
        ax.plot(tx(grid), line, ls, color=color, lw=1.2, zorder=3)
    if "predicted_neg_log_rate" in d:
        ax.plot(x, d["predicted_neg_log_rate"], **predicted_kw("k", lw=1.4, zorder=4))
    ax.set_xlabel(label)
    ax.set_ylabel("−log Γ (Γ: escapes per particle-step)")


def _legend(fig, var: str, ncol: int = 3) -> None:
    from matplotlib.lines import Line2D

    names = {a: n for n, a in LAWS[var].items()}
    handles = [Line2D([], [], color=PALETTE[0], marker="o", mfc="white", ls="none",
                      label="measured, 95% interval"),
               Line2D([], [], color="k", lw=1.4, label="predicted: Kramers with the rule's T")]
    handles += [Line2D([], [], ls=ls, color=c, lw=1.2, label=f"fit: law {names[a]}")
                for a, (ls, c) in FIT_STYLE.items()]
    handles.append(Line2D([], [], color=PALETTE[0], marker="x", ls="none",
                          label=f"< {MIN_EVENTS} escapes (not fitted)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol)


@styled("paper")
def plot_escape(rates: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """One figure per (variable, problem): a panel per rule. Returns the PNG paths."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for var in ("k", "B", "eta"):
        sweeps = list(_sweeps(rates, var))
        for problem in dict.fromkeys(key[1] for key, _ in sweeps):
            mine = [(key, d) for key, d in sweeps if key[1] == problem]
            ncols = min(3, len(mine))
            nrows = (len(mine) + ncols - 1) // ncols
            fig, axes = plt.subplots(nrows, ncols, figsize=(max(3.3 * ncols, 4.6),
                                                            2.8 * nrows + 0.5 + 1.2 / ncols),
                                     squeeze=False, layout="constrained")
            for ax, (key, d) in zip(axes.flat, mine):
                _panel(ax, d, var)
                ax.set_title(f"{key[0]}")
            for ax in list(axes.flat)[len(mine):]:
                ax.set_visible(False)
            fixed = ", ".join(f"{c}" for c in OTHERS[var])
            fig.suptitle(f"Escape rate against {AXIS[var][0].split('  ')[0]} ({problem}; "
                         f"{fixed} fixed)")
            _legend(fig, var, ncol=ncols)
            paths.append(save(fig, out_dir / f"escape_{var}_{problem}.png"))
    return paths

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

from ..plotting import styled

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


def _panel(ax, d: pd.DataFrame, var: str) -> None:
    col = VARIABLE_COLUMN[var]
    label, tx = AXIS[var]
    v = d[col].to_numpy(float)
    x = tx(v)
    y = d["neg_log_rate"].to_numpy(float)
    lo, hi = d["nlr_lo"].to_numpy(float), d["nlr_hi"].to_numpy(float)
    ok = (d["n_escaped"] >= MIN_EVENTS).to_numpy() & np.isfinite(y)
    ax.fill_between(x[ok], lo[ok], hi[ok], color="C0", alpha=0.2, lw=0, label="95% interval")
    ax.errorbar(x[ok], y[ok], yerr=[y[ok] - lo[ok], hi[ok] - y[ok]], fmt="o", color="C0", ms=4,
                capsize=2, label="measured")
    if (~ok).any():  # too few escapes to fit: the point estimate (or the lower bound), hollow
        ax.plot(x[~ok], np.where(np.isfinite(y[~ok]), y[~ok], lo[~ok]), "o", mfc="none",
                color="C0", label=f"< {MIN_EVENTS} escapes (not fitted)")
    grid = np.geomspace(v.min(), v.max(), 60)
    styles = iter(["-", "--", ":"])
    n = d["n_escaped"].to_numpy(float)[ok]
    for law, alpha in LAWS[var].items():
        if ok.sum() < 2:
            continue
        yy = y[ok] + kramers_offset(var, v[ok], alpha)
        x_fit = regressor(var, v[ok], alpha) if alpha != 0 else np.zeros(ok.sum())
        fit = weighted_line(x_fit, yy, n)
        slope = fit["slope"] if alpha != 0 else 0.0
        line = fit["intercept"] + slope * regressor(var, grid, alpha) - kramers_offset(var, grid, alpha)
        extra = f" (R²={fit['r2']:.4f})" if alpha != 0 else f" (χ²={fit['chi2']:.3g})"
        ax.plot(tx(grid), line, next(styles), color={1.0: "C1", 0.5: "C2"}.get(alpha, "C7"),
                lw=1.2, label=f"fit {law}{extra}")
    if "predicted_neg_log_rate" in d:
        ax.plot(x, d["predicted_neg_log_rate"], ":", color="k", lw=1, label="Kramers (theory)")
    ax.set_xlabel(label)
    ax.set_ylabel("−log Γ  (Γ: escapes per particle per step)")
    ax.legend(fontsize=7)


@styled("paper")
def plot_escape(rates: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """One figure per (variable, problem): a panel per rule. Returns the PNG paths."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for var in ("k", "B", "eta"):
        sweeps = list(_sweeps(rates, var))
        for problem in dict.fromkeys(key[1] for key, _ in sweeps):
            mine = [(key, d) for key, d in sweeps if key[1] == problem]
            fig, axes = plt.subplots(1, len(mine), figsize=(3.6 * len(mine), 3.4), squeeze=False)
            for ax, (key, d) in zip(axes[0], mine):
                _panel(ax, d, var)
                fixed = ", ".join(f"{c}={val:.3g}" for c, val in zip(OTHERS[var], key[2:]))
                ax.set_title(f"{key[0]} ({problem}; {fixed})", fontsize=8)
            fig.suptitle(f"Escape rate against {AXIS[var][0].split('  ')[0]}: {problem}", fontsize=10)
            fig.tight_layout()
            path = out_dir / f"escape_{var}_{problem}.png"
            fig.savefig(path, dpi=120)
            plt.close(fig)
            paths.append(path)
    return paths

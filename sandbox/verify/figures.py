"""Panels shared by the claim families' ``plot`` functions (drawn from saved tables).

Conventions (:mod:`sandbox.plotting`): predicted values are lines drawn above the measurements,
measured values are markers with a band over replicas (5–95% quantiles, columns
``measured_q05``/``measured_q95``), one Okabe–Ito colour per series, and a legend that says which
is which; residual panels use a log y axis with the claim's tolerance as a dashed line. Every
axis gets a label with its quantity and unit; the figures use constrained layout and fonts of
at least 8 pt (``tests/test_figures.py``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sandbox.plotting import (BAND, MEASURED, colors, predicted_kw, save as _save, style_legend,
                              thin)

TINY = 1e-18  # floor for residuals on log axes (exact zeros would vanish)
MAX_SERIES = 8  # series per panel: more would not be told apart by colour


def series_label(frame: pd.DataFrame, keys=("rule", "toy")) -> pd.Series:
    """One legend label per row: the non-empty values of ``keys`` joined by ' / '."""
    keys = [k for k in keys if k in frame.columns]
    parts = frame[keys].astype(str).replace({"nan": ""})
    return parts.agg(lambda r: " / ".join(v for v in r if v), axis=1)


def _log_x(ax, frame: pd.DataFrame, x: str, logx: bool) -> pd.DataFrame:
    """Drop x <= 0 (not on a log axis) and set the scale."""
    if logx:
        frame = frame[frame[x] > 0]
        ax.set_xscale("log")
    return frame


def predicted_vs_measured(ax, curves: pd.DataFrame, x="step", xlabel="step t", ylabel="",
                          logx=True, logy=True, keys=("rule", "toy"), legend: bool = True,
                          outside: bool = False) -> None:
    """Lines: ``predicted`` (above); markers + band: ``measured`` and its q05–q95 over replicas."""
    curves = _log_x(ax, curves, x, logx) if not curves.empty else curves
    if curves.empty:
        ax.set_visible(False)
        return
    curves = curves.assign(series=series_label(curves, keys))
    palette = colors(curves["series"])
    for name, c in curves.groupby("series", sort=False):
        c = c.sort_values(x)
        color = palette[name]
        if {"measured_q05", "measured_q95"} <= set(c.columns) and c["measured_q05"].notna().any():
            ax.fill_between(c[x], c["measured_q05"], c["measured_q95"], color=color, **BAND)
        ax.plot(*thin(c[x], c["measured"], log=logx), color=color, mfc="none", **MEASURED)
        if "predicted" in c and c["predicted"].notna().any():
            ax.plot(c[x], c["predicted"], **predicted_kw(color))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend:
        style_legend(ax, list(palette.items())[:MAX_SERIES], outside=outside)


def residuals(ax, curves: pd.DataFrame, tolerance: float | None, x="step", xlabel="step t",
              ylabel="residual", keys=("rule", "toy"), logx=True, legend: bool = True,
              outside: bool = False) -> None:
    """``residual`` (already a max over replicas) against ``x`` as markers, log y, the tolerance
    as a dashed line."""
    curves = _log_x(ax, curves, x, logx) if not curves.empty else curves
    if curves.empty:
        ax.set_visible(False)
        return
    c = curves.assign(series=series_label(curves, keys),
                      residual=np.maximum(curves["residual"].astype(float), TINY))
    palette = colors(c["series"])
    for name, part in c.groupby("series", sort=False):
        part = part.sort_values(x)
        ax.plot(*thin(part[x], part["residual"], log=logx), color=palette[name],
                **{**MEASURED, "ms": 2.5})
    if tolerance is not None:
        ax.axhline(tolerance, ls="--", color="k", lw=1, zorder=3)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend:
        entries = [("measured residual", MEASURED)]
        if tolerance is not None:
            entries.insert(0, ("tolerance", {"ls": "--", "lw": 1, "color": "k"}))
        style_legend(ax, list(palette.items())[:MAX_SERIES], entries=entries, outside=outside)


def save(fig, path: Path) -> Path:
    return _save(fig, path)


def grid(nrows: int, ncols: int, width: float = 3.6, height: float = 3.0):
    """A constrained-layout figure of ``nrows`` × ``ncols`` panels of about width × height
    inches each."""
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                        layout="constrained")


def forest(ax, rows: pd.DataFrame, xlabel: str, logx: bool = True) -> None:
    """One line per result row (label: ``rule``): the prediction as a vertical black line with
    its tolerance band (grey), the measurement as a marker with its 95% interval (error bar;
    none for an exact measurement); the verdict is written at the right."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from sandbox.plotting import PALETTE

    rows = rows.reset_index(drop=True)
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows.itertuples()):
        p, tol = float(r.predicted), float(r.tolerance)
        if np.isfinite(p):
            half = tol * abs(p) if getattr(r, "error_kind", "relative") == "relative" else tol
            ax.fill_betweenx([yi - 0.35, yi + 0.35], p - half, p + half, color="0.85", lw=0,
                             zorder=1)
            ax.plot([p, p], [yi - 0.35, yi + 0.35], color="k", lw=1.6, zorder=3)
        lo, hi = float(getattr(r, "measured_lo", np.nan)), float(getattr(r, "measured_hi", np.nan))
        m = float(r.measured)
        if np.isfinite(lo) and np.isfinite(hi):
            ax.errorbar(m, yi, xerr=[[m - lo], [hi - m]], fmt="none", ecolor=PALETTE[0], lw=1.2,
                        capsize=2, zorder=2)
        ax.plot(m, yi, "o", color=PALETTE[0], ms=5, mfc="white", mew=1.2, zorder=2)
    ax.set_yticks(y, [str(r) for r in rows["rule"]])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    right = ax.secondary_yaxis("right")
    right.set_yticks(y, [str(v) for v in rows["verdict"]])
    right.tick_params(length=0)
    ax.figure.legend(handles=[Line2D([], [], color="k", lw=1.6, label="predicted"),
                              Patch(color="0.85", label="tolerance band"),
                              Line2D([], [], color=PALETTE[0], marker="o", mfc="white", ls="-",
                                     label="measured, 95% interval")],
                     loc="outside lower center", ncol=3)

"""Seaborn panels shared by the claim families' ``plot`` functions (drawn from saved tables).

Conventions: predicted values are lines, measured values are points with a band over replicas
(5–95% quantiles, columns ``measured_q05``/``measured_q95``), residual panels use a log y axis
with the claim's tolerance as a dashed line. Every axis gets a label with its unit.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

TINY = 1e-18  # floor for residuals on log axes (exact zeros would vanish)


def series_label(frame: pd.DataFrame, keys=("rule", "toy")) -> pd.Series:
    """One legend label per row: the non-empty values of ``keys`` joined by ' / '."""
    parts = frame[list(keys)].astype(str).replace({"nan": ""})
    return parts.agg(lambda r: " / ".join(v for v in r if v), axis=1)


def _log_x(ax, frame: pd.DataFrame, x: str, logx: bool) -> pd.DataFrame:
    """Drop x <= 0 (not on a log axis) and set the scale."""
    if logx:
        frame = frame[frame[x] > 0]
        ax.set_xscale("log")
    return frame


def _palette(names) -> dict:
    names = list(dict.fromkeys(names))
    return dict(zip(names, sns.color_palette("tab10" if len(names) <= 10 else "husl", len(names))))


def predicted_vs_measured(ax, curves: pd.DataFrame, x="step", xlabel="step t", ylabel="",
                          logx=True, logy=True, keys=("rule", "toy")) -> None:
    """Lines: ``predicted``; points + band: ``measured`` (median) and its q05–q95 over replicas."""
    curves = _log_x(ax, curves, x, logx) if not curves.empty else curves
    if curves.empty:
        ax.set_visible(False)
        return
    curves = curves.assign(series=series_label(curves, keys))
    palette = _palette(curves["series"])
    for name, c in curves.groupby("series", sort=False):
        c = c.sort_values(x)
        color = palette[name]
        ax.plot(c[x], c["predicted"], "-", color=color, lw=1.2, label=name)
        ax.plot(c[x], c["measured"], "o", color=color, ms=2.5, alpha=0.8)
        if {"measured_q05", "measured_q95"} <= set(c.columns):
            ax.fill_between(c[x], c["measured_q05"], c["measured_q95"], color=color, alpha=0.15,
                            lw=0)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _legend(ax, title="line: predicted, o: measured")


def residuals(ax, curves: pd.DataFrame, tolerance: float | None, x="step", xlabel="step t",
              ylabel="residual", keys=("rule", "toy"), logx=True) -> None:
    """``residual`` (already a max over replicas) against ``x``, log y, tolerance dashed."""
    curves = _log_x(ax, curves, x, logx) if not curves.empty else curves
    if curves.empty:
        ax.set_visible(False)
        return
    c = curves.assign(series=series_label(curves, keys),
                      residual=np.maximum(curves["residual"].astype(float), TINY))
    palette = _palette(c["series"])
    for name, part in c.groupby("series", sort=False):
        part = part.sort_values(x)
        ax.plot(part[x], part["residual"], "-", color=palette[name], lw=1, label=name)
    if tolerance is not None:
        ax.axhline(tolerance, ls="--", color="k", lw=1, label="tolerance")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _legend(ax)


def _legend(ax, title=None) -> None:
    n = len(ax.get_legend_handles_labels()[0])
    ax.legend(fontsize=5 if n > 8 else 6, loc="best", ncol=2 if n > 10 else 1, title=title,
              title_fontsize=6, framealpha=0.6)


def save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)  # no tight_layout: with many log axes it costs seconds
    plt.close(fig)
    return path


def grid(nrows: int, ncols: int, width: float = 4.2, height: float = 3.4):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    fig.subplots_adjust(left=0.8 / (width * ncols), right=0.99, bottom=0.55 / (height * nrows),
                        top=1 - 0.35 / (height * nrows), wspace=0.38, hspace=0.38)
    return fig, axes

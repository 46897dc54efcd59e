"""Figures of probe tables (drawn from the saved CSVs, never from live runs).

- :func:`plot_equilibrium`: Δ_t/Δ* per layer against steps, one panel per rule; the prediction
  (1, a line above the markers), the ±tolerance band and the measurement window.
- :func:`plot_rate`: log-log Δ_t against t per layer with the predicted 1/sqrt((k+1)Mt) and
  the fit window.
- :func:`plot_detection`: |cos(w, g)| / (δ/sqrt(L)) per layer against steps (the smaller of the
  channel view's max over rows and the layer view), fp32 and bf16: the test fires below 1.
- :func:`plot_nets`: all three for the ``nets`` verify family.

Conventions of :mod:`sandbox.plotting` (constrained layout, fonts ≥ 8 pt, Okabe–Ito colours,
predictions as lines above measured markers).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..plotting import MEASURED, colors, predicted_kw, save, style_legend, styled


def _binned(df: pd.DataFrame, by: list[str], x: str, width: int) -> pd.DataFrame:
    d = df.assign(bin=(df[x] // width) * width + width / 2)
    return (d.groupby(by + ["bin"]).delta.apply(lambda v: float(np.sqrt(np.mean(v ** 2))))
            .reset_index().rename(columns={"bin": x}))


def _panels(n: int, width: float = 3.6, height: float = 2.8, ncols: int = 2):
    import matplotlib.pyplot as plt

    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols + 1.6, height * nrows),
                             squeeze=False, layout="constrained")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)[:n]


def _layer_series(d: pd.DataFrame) -> pd.Series:
    seeds = d["seed"].nunique() > 1
    return d["layer"].astype(str) + (" seed " + d["seed"].astype(str) if seeds else "")


@styled()
def plot_equilibrium(probes: pd.DataFrame, path: Path, tolerance: float = 0.15) -> Path:
    d = probes[probes.scale_invariant.astype(bool)]
    keys = ["rule", "seed", "layer", "predicted", "window_start", "window_stop"]
    keys += ["rescaled_at"] if "rescaled_at" in d else []
    b = _binned(d, keys, "step", 25)
    b = b.assign(ratio=b.delta / b.predicted, series=_layer_series(b))
    rules = list(dict.fromkeys(b.rule))
    palette = colors(b.series)
    fig, axes = _panels(len(rules))
    for ax, rule in zip(axes, rules):
        w = b[b.rule == rule]
        ax.axhspan(1 - tolerance, 1 + tolerance, color="0.85", lw=0, zorder=0)
        ax.axvspan(w.window_start.min(), w.window_stop.max(), color="#009E73", alpha=0.10, lw=0,
                   zorder=0)
        if "rescaled_at" in w and (w.rescaled_at > 0).any():
            ax.axvline(w.rescaled_at.max(), color="0.4", ls=":", lw=1, zorder=1)
        for name, g in w.groupby("series", sort=False):
            ax.plot(g.step, g.ratio, color=palette[name], **{**MEASURED, "ms": 3})
        ax.plot([w.step.min(), w.step.max()], [1.0, 1.0], **predicted_kw("k"))
        ax.set_ylim(0, 2.5)
        ax.set_title(rule)
        ax.set_xlabel("step")
        ax.set_ylabel("Δ / predicted Δ* (rms per 25 steps)")
    style_legend(axes[-1], list(palette.items())[:8], outside=True,
                 entries=(("predicted Δ* (ratio 1)", {"ls": "-", "lw": 1.6, "color": "k"}),
                          ("measured (markers)", MEASURED)))
    fig.suptitle(f"Weight-decay equilibrium per layer (grey: ±{tolerance:.0%}, green: "
                 "measuring window, dotted: matched start)")
    return save(fig, path)


@styled()
def plot_rate(probes: pd.DataFrame, path: Path) -> Path:
    """``probes`` needs the theory time ``t`` and the prediction ``predicted`` per row (and
    the fit window ``window_start``/``window_stop`` where known)."""
    from .analysis import log_binned

    rows = []
    for (rule, seed, layer), g in probes.groupby(["rule", "seed", "layer"]):
        tb, db = log_binned(g.t, g.delta, max(1.0, g.t.min()), g.t.max() + 1, bins=30)
        rows.append(pd.DataFrame({"rule": rule, "seed": seed, "layer": layer, "t": tb, "delta": db}))
    b = pd.concat(rows, ignore_index=True)
    b = b.assign(series=_layer_series(b))
    rules = list(dict.fromkeys(b.rule))
    palette = colors(b.series)
    fig, axes = _panels(len(rules), width=3.2, ncols=4)
    for ax, rule in zip(axes, rules):
        mine = probes[probes.rule == rule]
        if "window_start" in mine:
            ax.axvspan(mine.window_start.min(), mine.window_stop.max(), color="#009E73",
                       alpha=0.10, lw=0, zorder=0)
        for name, g in b[b.rule == rule].groupby("series", sort=False):
            ax.plot(g.t, g.delta, color=palette[name], **{**MEASURED, "ms": 3})
        pred = mine.drop_duplicates("t").sort_values("t")
        ax.plot(pred.t, pred.predicted, **predicted_kw("k"))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(rule)
        ax.set_xlabel("t (steps from the theory's origin)")
        ax.set_ylabel("angular update Δ_t (rad)")
    style_legend(axes[-1], list(palette.items())[:8], outside=True,
                 entries=(("predicted 1/sqrt((k+1)Mt)", {"ls": "-", "lw": 1.6, "color": "k"}),
                          ("measured (rms per log bin)", MEASURED)))
    fig.suptitle("No weight decay: Δ_t against t (green: fit window)")
    return save(fig, path)


@styled()
def plot_detection(probes: pd.DataFrame, path: Path) -> Path:
    margin = np.minimum(probes.cos_channel / probes.thr_channel, probes.cos_layer / probes.thr_layer)
    exp = probes["experiment"] if "experiment" in probes else pd.Series("", index=probes.index)
    d = probes.assign(margin=margin, precision=np.where(exp == "bf16", "bf16 autocast", "fp32"))
    d = d[np.isfinite(d.margin) & (d.margin > 0)]
    truth = d.scale_invariant.astype(bool)
    d = d.assign(series=d.layer.astype(str) + np.where(truth, " (invariant)", " (not invariant)"))
    palette = colors(d.series)
    panels = list(dict.fromkeys(d.precision))
    fig, axes = _panels(len(panels), width=3.6)
    for ax, prec in zip(axes, panels):
        for name, g in d[d.precision == prec].groupby("series", sort=False):
            ax.plot(g.step, g.margin, ls="none", marker="o", ms=2, alpha=0.5,
                    color=palette[name], zorder=2)
        ax.axhline(1.0, color="k", lw=1.2, zorder=3)
        ax.set_yscale("log")
        ax.set_title(prec)
        ax.set_xlabel("step")
        ax.set_ylabel("|cos(w, g)| / (δ/sqrt(L)), smaller view")
    style_legend(axes[-1], list(palette.items())[:8], outside=True,
                 entries=(("test threshold (fires below)", {"ls": "-", "lw": 1.2, "color": "k"}),
                          ("measured (markers)", {"ls": "none", "marker": "o", "ms": 3})))
    fig.suptitle("AdamP's scale-invariance test per layer (channel view: max over rows)")
    return save(fig, path)


def plot_nets(results: pd.DataFrame, cfg) -> list[Path]:
    """The ``nets`` family's figures, from ``<out>/nets/probes.csv``."""
    out = cfg.family_dir("nets")
    src = out / "probes.csv"
    if not src.exists():
        return []
    probes = pd.read_csv(src)
    paths = []
    eq = probes[probes.experiment == "equilibrium"]
    if len(eq):
        paths.append(plot_equilibrium(eq, out / "equilibrium.png"))
    rate = probes[probes.experiment == "rate"]
    if len(rate):
        paths.append(plot_rate(rate, out / "rate.png"))
    det = probes[probes.experiment.isin(["equilibrium", "bf16"])]
    if len(det):
        paths.append(plot_detection(det, out / "detection.png"))
    return paths

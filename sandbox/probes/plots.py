"""Seaborn figures of probe tables (drawn from the saved CSVs, never from live runs).

- :func:`plot_equilibrium`: Δ_t/Δ* per layer against steps, one panel per rule; the ±tolerance band
  and the measurement window.
- :func:`plot_rate`: log-log Δ_t against t per layer with the predicted 1/sqrt((k+1)Mt).
- :func:`plot_detection`: |cos(w, g)| / (δ/sqrt(L)) per layer against steps (the smaller of the
  channel view's max over rows and the layer view), fp32 and bf16: the test fires below 1.
- :func:`plot_nets`: all three for the ``nets`` verify family.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..plotting import styled


def _sns():
    import seaborn as sns

    return sns


def _save(grid, path: Path) -> Path:
    """Save a seaborn FacetGrid (tight box: the titles sit above the axes) and free it."""
    import matplotlib.pyplot as plt

    grid.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(grid.figure)
    return path


def _binned(df: pd.DataFrame, by: list[str], x: str, width: int) -> pd.DataFrame:
    d = df.assign(bin=(df[x] // width) * width + width / 2)
    return (d.groupby(by + ["bin"]).delta.apply(lambda v: float(np.sqrt(np.mean(v ** 2))))
            .reset_index().rename(columns={"bin": x}))


@styled()
def plot_equilibrium(probes: pd.DataFrame, path: Path, tolerance: float = 0.15) -> Path:
    sns = _sns()
    d = probes[probes.scale_invariant.astype(bool)]
    keys = ["rule", "seed", "layer", "predicted", "window_start", "window_stop"]
    keys += ["rescaled_at"] if "rescaled_at" in d else []
    b = _binned(d, keys, "step", 25)
    b["ratio"] = b.delta / b.predicted
    g = sns.relplot(data=b, x="step", y="ratio", hue="layer", style="seed", col="rule", col_wrap=2,
                    kind="line", height=3, aspect=1.5, facet_kws={"sharex": False})
    for rule, ax in g.axes_dict.items():
        w = b[b.rule == rule]
        ax.axhspan(1 - tolerance, 1 + tolerance, color="grey", alpha=0.15, lw=0)
        ax.axhline(1.0, color="k", lw=1)
        ax.axvspan(w.window_start.min(), w.window_stop.max(), color="C2", alpha=0.08, lw=0)
        if "rescaled_at" in w and (w.rescaled_at > 0).any():
            ax.axvline(w.rescaled_at.max(), color="grey", ls=":", lw=1)
        ax.set_ylim(0, 2.5)
    g.set_axis_labels("step", "Δ / predicted Δ* (rms per 25 steps)")
    g.figure.suptitle("Weight-decay equilibrium per layer (grey band: ±15%, green: measurement "
                      "window, dotted: matched start)", y=1.03)
    return _save(g, path)


@styled()
def plot_rate(probes: pd.DataFrame, path: Path) -> Path:
    """``probes`` needs the theory time ``t`` and the prediction ``predicted`` per row."""
    sns = _sns()
    from .analysis import log_binned

    rows = []
    for (rule, seed, layer), g in probes.groupby(["rule", "seed", "layer"]):
        tb, db = log_binned(g.t, g.delta, max(1.0, g.t.min()), g.t.max() + 1, bins=30)
        rows.append(pd.DataFrame({"rule": rule, "seed": seed, "layer": layer, "t": tb, "delta": db}))
    b = pd.concat(rows, ignore_index=True)
    g = sns.relplot(data=b, x="t", y="delta", hue="layer", style="seed", col="rule", kind="line",
                    marker="o", height=3.2, aspect=1.2)
    for rule, ax in g.axes_dict.items():
        pred = probes[probes.rule == rule].drop_duplicates("t").sort_values("t")
        ax.plot(pred.t, pred.predicted, "k--", lw=1, label="1/sqrt((k+1)M t)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(loc="lower left", fontsize=8)
    g.set_axis_labels("t (steps since the theory's origin)", "angular update Δ_t (rad)")
    g.figure.suptitle("No weight decay: Δ_t against t (predicted slope −1/2)", y=1.03)
    return _save(g, path)


@styled()
def plot_detection(probes: pd.DataFrame, path: Path) -> Path:
    sns = _sns()
    margin = np.minimum(probes.cos_channel / probes.thr_channel, probes.cos_layer / probes.thr_layer)
    d = probes.assign(margin=margin,
                      precision=np.where(probes.get("experiment", "") == "bf16", "bf16 autocast", "fp32"),
                      truth=np.where(probes.scale_invariant.astype(bool), "scale-invariant", "not invariant"))
    d = d[np.isfinite(d.margin) & (d.margin > 0)]
    g = sns.relplot(data=d, x="step", y="margin", hue="layer", style="truth", col="precision",
                    kind="scatter", s=8, alpha=0.5, height=3.2, aspect=1.3)
    for ax in g.axes.flat:
        ax.axhline(1.0, color="k", lw=1)
        ax.set_yscale("log")
    g.set_axis_labels("step", "|cos(w, g)| / (δ/sqrt(L)), smaller view")
    g.figure.suptitle("AdamP's test (channel view: max over rows; layer view): fires below 1",
                      y=1.03)
    return _save(g, path)


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

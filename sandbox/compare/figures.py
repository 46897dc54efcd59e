"""Seaborn figures of a comparison, drawn from the files in its folder (never from memory).

- ``curves.png``: test accuracy and test loss against the step, one line per rule (mean over the
  seeds that did not diverge) with its 95% Student-t band;
- ``lr_sensitivity.png``: final validation accuracy of the tuning runs against the learning rate
  (log axis), diverged runs marked ×, the chosen lr circled;
- ``effective_step.png`` (when probes were recorded): per scale-invariant layer, the measured
  angular update Δ_t against the step (log-log, rms over seeds; markers), with the prediction of
  ``theory`` for the run's own regime (see :mod:`.effective_step`; a line above the markers)
  where the run is in it: the prediction assumes a constant scale-free update size
  A = tan(Δ)·r^(k+1)/η (the noise-dominated regime), so a layer whose measured A drifts by more
  than :data:`A_DRIFT` over the run (early training, while the loss still falls) gets no line
  but a note saying by how much A moved; ``effective_step.csv`` holds the per-layer numbers.

Conventions of :mod:`sandbox.plotting`: constrained layout, fonts ≥ 8 pt, Okabe–Ito colours.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .effective_step import effective_step_table, load_probes, predicted_curve
from .store import write_atomic
from .summary import t_interval
from ..plotting import MEASURED, colors, predicted_kw, styled
from .palette import rule_colors

A_DRIFT = 1.5  # factor by which the scale-free update size may move before the theory's regime
# (constant A) is considered left: no prediction is drawn then


def _t_band(values) -> tuple[float, float]:
    m, h = t_interval(values)
    return (m, m) if not math.isfinite(h) else (m - h, m + h)


def _records(out: Path) -> pd.DataFrame:
    recs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    return pd.DataFrame(recs)


def _rule_order(out: Path) -> list[str]:
    manifest = out / "manifest.json"
    return json.loads(manifest.read_text())["config"]["optimizers"] if manifest.exists() else None


@styled()
def make_figures(out: str | Path) -> list[Path]:
    """Draw every figure the folder has data for; return the paths written."""
    out = Path(out)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    recs = _records(out)
    if recs.empty:
        return []
    paths = [_curves(out, recs, fig_dir)] if (recs["phase"] != "tune").any() else []
    if (recs["phase"] == "tune").any() and (out / "tuning.csv").exists():
        paths.append(_lr_sensitivity(out, fig_dir))
    eff = effective_step_table(out, recs)
    if not eff.empty:
        paths.append(_effective_step(out, recs, eff, fig_dir))
    plt.close("all")
    return [p for p in paths if p is not None]


def _curves(out: Path, recs: pd.DataFrame, fig_dir: Path) -> Path:
    reported = recs[recs["phase"] != "tune"]
    ok = reported[reported["status"] == "finished"]
    frames = [pd.read_csv(out / "runs" / f"{r}.csv") for r in ok["run_id"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    if frames:
        curves = pd.concat(frames, ignore_index=True)
        for ax, (col, label) in zip(axes, [("test_acc", "test accuracy"), ("test_loss", "test loss (cross-entropy, nats)")]):
            order = [r for r in (_rule_order(out) or sorted(curves["rule"].unique()))
                     if r in set(curves["rule"])]
            sns.lineplot(data=curves, x="step", y=col, hue="rule", hue_order=order,
                         palette=rule_colors(order), errorbar=_t_band, ax=ax)
            ax.set_xlabel("training step")
            ax.set_ylabel(label)
        axes[1].set_yscale("log")
    n_div = int((reported["status"] == "diverged").sum())
    fig.suptitle(f"{reported['phase'].iloc[0]} runs: mean over seeds, 95% t band"
                 + (f" ({n_div} diverged run(s) left out)" if n_div else ""))
    path = fig_dir / "curves.png"
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    return path


def _lr_sensitivity(out: Path, fig_dir: Path) -> Path:
    tuning = pd.read_csv(out / "tuning.csv")
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    ok = tuning[tuning["status"] == "finished"]
    order = [r for r in (_rule_order(out) or sorted(ok["rule"].unique())) if r in set(ok["rule"])]
    sns.lineplot(data=ok, x="lr", y="valid_acc", hue="rule", hue_order=order,
                 palette=rule_colors(order), marker="o", ax=ax)
    div = tuning[tuning["status"] != "finished"]
    if len(div):
        ax.scatter(div["lr"], np.zeros(len(div)), marker="x", color="k", label="diverged")
    chosen = tuning[tuning["chosen"]]
    ax.scatter(chosen["lr"], chosen["valid_acc"], s=160, facecolors="none", edgecolors="k",
               label="chosen lr")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final validation accuracy (seed 0)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    path = fig_dir / "lr_sensitivity.png"
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    return path


def update_size_drift(probes: pd.DataFrame, hp: dict, rule: str) -> float:
    """max/min ratio of a layer's scale-free update size A_t = tan(Δ_t)·r_t^(k+1)/η between the
    first and last thirds of its records (rms over seeds per step): 1 in the theory's regime."""
    import sandbox

    k = float(sandbox.info(rule).homogeneity)
    eta = float(hp["lr"][0] if isinstance(hp.get("lr"), list) else hp.get("lr", np.nan))
    a = (np.tan(probes["delta"]) * probes["norm"] ** (k + 1) / eta).groupby(probes["step"]).mean()
    if len(a) < 6 or not np.isfinite(a).all():
        return float("nan")
    third = len(a) // 3
    early, late = float(np.median(a.iloc[:third])), float(np.median(a.iloc[-third:]))
    return max(early, late) / min(early, late) if min(early, late) > 0 else float("inf")


def _effective_step(out: Path, recs: pd.DataFrame, eff: pd.DataFrame, fig_dir: Path) -> Path | None:
    from matplotlib.lines import Line2D

    rules = [r for r in eff["rule"].unique() if not load_probes(out, recs, r).empty]
    if not rules:
        return None
    ncols = min(3, len(rules))
    nrows = (len(rules) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 1.8, 3.0 * nrows), squeeze=False,
                             layout="constrained")
    for ax in list(axes.flat)[len(rules):]:
        ax.set_visible(False)
    layers_all = []
    for ax, rule in zip(axes.flat, rules):
        probes = load_probes(out, recs, rule)
        probes = probes[np.isfinite(probes["delta"]) & (probes["delta"] > 0)].assign(
            taken=lambda d: d["step"] + 1)
        layers = list(probes["layer"].unique())
        layers_all += layers
        colours = colors(dict.fromkeys(layers_all))
        hp = recs[(recs["phase"] != "tune") & (recs["rule"] == rule)]["hp"].iloc[0]
        notes = []
        for layer in layers:
            mine = probes[probes["layer"] == layer]
            rms = mine.groupby("taken")["delta"].apply(lambda v: float(np.sqrt(np.mean(v ** 2))))
            ax.plot(rms.index, rms.to_numpy(), color=colours[layer], **{**MEASURED, "ms": 3})
            steps, pred, kind = predicted_curve(rule, hp, mine)
            drift = update_size_drift(mine, hp, rule)
            ok = np.isfinite(pred) & (pred > 0)
            if ok.any() and drift <= A_DRIFT:
                ax.plot(steps[ok] + 1, pred[ok], **predicted_kw(colours[layer]))
            elif ok.any():
                notes.append(f"A ×{drift:.2g}")
        ax.set(xscale="log", yscale="log", title=rule, xlabel="training step t (1-based)",
               ylabel="angular update Δ_t (rad)")
        if notes:
            ax.text(0.02, 0.03, "no prediction drawn: outside the\ntheory's regime (" + ", ".join(notes)
                    + ")", transform=ax.transAxes, fontsize=8, va="bottom")
    colours = colors(dict.fromkeys(layers_all))
    handles = [Line2D([], [], color="0.25", ls="-", lw=1.6, label="predicted (line; run's regime)"),
               Line2D([], [], color="0.25", **{k: v for k, v in MEASURED.items() if k != "zorder"},
                      label="measured (rms over seeds)")]
    handles += [Line2D([], [], color=c, lw=6, alpha=0.8, label=lay) for lay, c in colours.items()]
    fig.legend(handles=handles, loc="outside right upper")
    fig.suptitle("scale-invariant layers: angular update per layer")
    path = fig_dir / "effective_step.png"
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    return path

"""``figures/summary.png``: what each rule did and why — the curves, and under them, per rule,
the per-layer effective step Δ_t of its normalised layers against the theory's prediction for
the run's OWN regime.

Top: validation accuracy (the split time to target is measured on, with the target as a
horizontal line) and test accuracy against the step, mean over seeds with the 95% t band, one
colour per rule (:mod:`.palette`). Below, one panel per rule on the same step axis: the angular
update Δ_t of each scale-invariant layer (markers, rms over seeds, shades of the rule's colour)
and the prediction of :func:`.effective_step.predicted_curve` for that run's hyperparameters —
with weight decay the approach to the equilibrium Δ* = sqrt(2ηλ_eff/M) (dotted horizontal line),
without it the no-decay law Δ_t ≈ 1/sqrt((k+1)Mt) of a growing norm. A curve of the other
regime is never drawn; a run with no prediction (Adam with coupled L2: no fixed Δ*; a rule
without traits) says so in its panel. Drawn from the files in the folder only.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..plotting import MEASURED, predicted_kw, styled, tidy_log_ticks
from .effective_step import equilibrium, load_probes, predicted_curve
from .palette import rule_colors, shades
from .store import write_atomic
from .summary import t_interval


def _band(curves: pd.DataFrame, col: str) -> pd.DataFrame:
    rows = []
    for step, g in curves.groupby("step"):
        m, h = t_interval(g[col])
        rows.append((step, m, m - h if math.isfinite(h) else m, m + h if math.isfinite(h) else m))
    return pd.DataFrame(rows, columns=["step", "mean", "lo", "hi"])


def _regime(rule: str, hp: dict) -> str:
    lam = hp.get("weight_decay", [0.0])[0]
    return f"weight decay {lam:g}: toward Δ*" if lam else "no weight decay: Δ_t ~ 1/√t"


@styled()
def summary_figure(out: str | Path) -> Path | None:
    """Draw ``out/figures/summary.png`` from the folder's reported runs; None if it has none."""
    import matplotlib.pyplot as plt

    out = Path(out)
    recs = pd.DataFrame([json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))])
    if recs.empty or not (recs["phase"] != "tune").any():
        return None
    manifest = json.loads((out / "manifest.json").read_text())
    order = [r for r in manifest["config"]["optimizers"] if r in set(recs["rule"])]
    reported = recs[(recs["phase"] != "tune") & (recs["status"] == "finished")]
    rules = [r for r in order if r in set(reported["rule"])]
    if not rules:
        return None
    colours = rule_colors(order)
    target = _target(reported)
    ncols = max(2, min(len(rules), 5))
    nrows_rules = math.ceil(len(rules) / ncols)
    fig = plt.figure(figsize=(2.9 * ncols + 1.5, 3.4 + 2.6 * nrows_rules), layout="constrained")
    grid = fig.add_gridspec(1 + nrows_rules, ncols, height_ratios=[1.3] + [1.0] * nrows_rules)
    top = fig.add_subfigure(grid[0, :]).subplots(1, 2)
    curves = pd.concat([pd.read_csv(out / "runs" / f"{r}.csv") for r in reported["run_id"]],
                       ignore_index=True)
    for ax, col, label in ((top[0], "valid_acc", "validation accuracy"),
                           (top[1], "test_acc", "test accuracy")):
        for rule in rules:
            b = _band(curves[curves["rule"] == rule], col)
            ax.fill_between(b["step"], b["lo"], b["hi"], color=colours[rule], alpha=0.18, lw=0)
            ax.plot(b["step"], b["mean"], color=colours[rule], label=rule)
        if col == "valid_acc" and math.isfinite(target):
            ax.axhline(target, color="0.3", ls=":", lw=1.2, label=f"target {target:.0%}")
        ax.set(xlabel="training step", ylabel=label,
               title=f"{label}: mean over seeds, 95% t band")
    top[1].legend(loc="lower right")
    axes = []
    for i, rule in enumerate(rules):
        ax = fig.add_subplot(grid[1 + i // ncols, i % ncols])
        axes.append(ax)
        _delta_panel(ax, out, recs, rule, colours[rule])
    xmax = float(curves["step"].max())
    for ax in [*top, *axes]:
        ax.set_xlim(0, xmax * 1.02)
    fig.suptitle(f"{manifest['config']['problem']}: the curves, and why — below, per rule, the "
                 "angular update Δ_t of each normalised layer\n(markers: measured, rms over "
                 "seeds; lines: theory for the run's own regime)")
    tidy_log_ticks(fig)
    path = out / "figures" / "summary.png"
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path


def _target(reported: pd.DataFrame) -> float:
    for t in reported.get("target", []):
        if isinstance(t, dict) and "target" in t:
            return float(t["target"])
    return math.nan


def _delta_panel(ax, out: Path, recs: pd.DataFrame, rule: str, colour) -> None:
    probes = load_probes(out, recs, rule)
    hp = recs[(recs["phase"] != "tune") & (recs["rule"] == rule)]["hp"].iloc[0]
    ax.set(yscale="log", xlabel="training step", ylabel="Δ_t (rad)")
    if probes.empty:
        ax.set_title(f"{rule}: no probes recorded")
        return
    probes = probes[np.isfinite(probes["delta"]) & (probes["delta"] > 0)]
    layers = list(dict.fromkeys(probes["layer"]))
    drawn, kind = False, ""
    for layer, c in zip(layers, shades(colour, len(layers))):
        mine = probes[probes["layer"] == layer]
        rms = mine.groupby("step")["delta"].apply(lambda v: float(np.sqrt(np.mean(v ** 2))))
        ax.plot(rms.index + 1, rms.to_numpy(), color=c, **{**MEASURED, "ms": 2.5},
                label="layer " + layer.replace("body.", "").replace(".weight", ""))
        steps, pred, kind = predicted_curve(rule, hp, mine)
        ok = np.isfinite(pred) & (pred > 0)
        if ok.any():
            ax.plot(steps[ok] + 1, pred[ok], **predicted_kw(c))
            drawn = True
    delta_star, tau = equilibrium(rule, hp)
    lam = hp.get("weight_decay", [0.0])[0]
    if lam and math.isfinite(delta_star) and drawn:
        ax.axhline(delta_star, color="0.3", ls=":", lw=1.2)
        span = int(probes["step"].max()) + 1
        ax.annotate(f"Δ* = {delta_star:.3g} (τ ≈ {tau:.3g} steps; run {span})", (0.98, delta_star),
                    xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=8)
    title = f"{rule}: {_regime(rule, hp)}"
    if "open" in kind:
        title += " (open: isotropic β1)"
    if not drawn:
        title = f"{rule}: no prediction for this run's regime ({kind})" if kind else \
            f"{rule}: no prediction for this run's regime"
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8, markerscale=1.5, handlelength=1)

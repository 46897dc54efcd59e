"""Seaborn figures of a comparison, drawn from the files in its folder (never from memory).

- ``curves.png``: test accuracy and test loss against the step, one line per rule (mean over the
  seeds that did not diverge) with its 95% Student-t band;
- ``lr_sensitivity.png``: final validation accuracy of the tuning runs against the learning rate
  (log axis), diverged runs marked ×, the chosen lr circled;
- ``effective_step.png`` (when probes were recorded): per scale-invariant layer, the measured
  angular update Δ_t against the step (log-log, mean over seeds), with the prediction of
  ``theory`` (see :mod:`.effective_step`); ``effective_step.csv`` holds the per-layer numbers.
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
from ..plotting import styled


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
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    if frames:
        curves = pd.concat(frames, ignore_index=True)
        for ax, (col, label) in zip(axes, [("test_acc", "test accuracy"), ("test_loss", "test loss (cross-entropy, nats)")]):
            order = [r for r in (_rule_order(out) or sorted(curves["rule"].unique()))
                     if r in set(curves["rule"])]
            sns.lineplot(data=curves, x="step", y=col, hue="rule", hue_order=order,
                         errorbar=_t_band, ax=ax)
            ax.set_xlabel("training step")
            ax.set_ylabel(label)
        axes[1].set_yscale("log")
    n_div = int((reported["status"] == "diverged").sum())
    fig.suptitle(f"{reported['phase'].iloc[0]} runs: mean over seeds, 95% t band"
                 + (f" ({n_div} diverged run(s) left out)" if n_div else ""))
    fig.tight_layout()
    path = fig_dir / "curves.png"
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    return path


def _lr_sensitivity(out: Path, fig_dir: Path) -> Path:
    tuning = pd.read_csv(out / "tuning.csv")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ok = tuning[tuning["status"] == "finished"]
    order = [r for r in (_rule_order(out) or sorted(ok["rule"].unique())) if r in set(ok["rule"])]
    sns.lineplot(data=ok, x="lr", y="valid_acc", hue="rule", hue_order=order, marker="o", ax=ax)
    div = tuning[tuning["status"] != "finished"]
    if len(div):
        ax.scatter(div["lr"], np.zeros(len(div)), marker="x", color="k", label="diverged")
    chosen = tuning[tuning["chosen"]]
    ax.scatter(chosen["lr"], chosen["valid_acc"], s=160, facecolors="none", edgecolors="k",
               label="chosen lr")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final validation accuracy (seed 0)")
    ax.legend()
    fig.tight_layout()
    path = fig_dir / "lr_sensitivity.png"
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    return path


def _effective_step(out: Path, recs: pd.DataFrame, eff: pd.DataFrame, fig_dir: Path) -> Path | None:
    rules = [r for r in eff["rule"].unique() if not load_probes(out, recs, r).empty]
    if not rules:
        return None
    fig, axes = plt.subplots(1, len(rules), figsize=(4.2 * len(rules), 4), squeeze=False, sharey=True)
    for ax, rule in zip(axes[0], rules):
        probes = load_probes(out, recs, rule)
        probes = probes[np.isfinite(probes["delta"]) & (probes["delta"] > 0)].assign(
            taken=lambda d: d["step"] + 1)
        layers = list(probes["layer"].unique())
        colours = dict(zip(layers, sns.color_palette(n_colors=max(1, len(layers)))))
        if len(probes):
            sns.lineplot(data=probes, x="taken", y="delta", hue="layer", palette=colours,
                         errorbar=None, ax=ax, lw=1)
        hp = recs[(recs["phase"] != "tune") & (recs["rule"] == rule)]["hp"].iloc[0]
        kind = ""
        for layer in layers:
            steps, pred, kind = predicted_curve(rule, hp, probes[probes["layer"] == layer])
            ok = np.isfinite(pred) & (pred > 0)
            if ok.any():
                ax.plot(steps[ok] + 1, pred[ok], "--", color=colours[layer], lw=1.2)
        ax.plot([], [], "k--", label=f"theory ({kind})")
        ax.set(xscale="log", yscale="log", title=rule, xlabel="training step t (1-based)",
               ylabel="angular update Δ_t (rad)")
        ax.legend(fontsize=7)
    fig.suptitle("scale-invariant layers: measured angular update (solid, mean over seeds) "
                 "vs theory (dashed)")
    fig.tight_layout()
    path = fig_dir / "effective_step.png"
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    return path

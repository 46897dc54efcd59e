r"""Notebook 02: the weight-decay equilibrium on the noise toy and per layer in a small BN net.

Theory (docs/theory.md §3; :mod:`theory.equilibrium`): with decay the norm settles where the
decay's shrinking balances the noisy update's growth. The rms angular step there is

.. math:: \Delta^* = \sqrt{2\eta\lambda_\text{eff}/M}, \qquad
          r^{*\,2(k+1)} = \frac{M\eta A^2}{2\lambda_\text{eff}}, \qquad
          \tau = \frac{1}{2(k+1)\eta\lambda_\text{eff}}

(SGD, SGDM: van Laarhoven 2017, Wan et al. 2021; AdamW: Kosson et al., ICML 2024; SGDP, AdamP:
derived in ``theory``; Adai: open). λ_eff and M per rule come from the rule's traits
(:func:`theory.effective_decay`, :func:`theory.momentum_factor`).

Toy runs are the notebook helpers' (:mod:`.toy_runs`); settings, predictions (finite-ηλ refined
form) and measurements are :mod:`sandbox.experiments.weight_decay`'s; the BN-net runs are the
``verify`` family ``nets`` (:func:`sandbox.verify.families.nets.equilibrium_rows`) at a size the
notebook chooses.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

import sandbox
import theory
from sandbox.experiments.effective_step import series
from sandbox.verify.families import equilibria as equilibria_family
from sandbox.experiments.weight_decay import (equilibrium_setting, fit_relaxation,
                                              isotropic_traits, measure_equilibrium,
                                              predict_equilibrium)

from .verdicts import claim_row

TOLERANCE = 0.05  # theory catalogue: equilibria on the toy, 5%
TIME_TOLERANCE = 0.10


def claim_id(rule: str, hp: dict) -> str:
    """The catalogue claim of a rule's equilibrium (SGD with momentum: ``equilibrium.sgdm``;
    the Adai family: ``equilibrium.adai``, open)."""
    from theory.catalogue import CLAIMS

    known = {c.id for c in CLAIMS}
    if rule.startswith("adai"):
        return "equilibrium.adai"
    if rule == "sgd" and hp.get("momentum", 0.0) > 0:
        return "equilibrium.sgdm"
    if f"equilibrium.{rule}" in known:
        return f"equilibrium.{rule}"
    return f"equilibrium.{sandbox.info(rule).base or rule}"


def toy_configs(rules, d: int, x: float, momentum: float = 0.9,
                ema_betas: tuple = (0.9, 0.9)) -> list[dict]:
    """Run configs (for :func:`sandbox.notebook.toy_runs.run_configs`) with η·λ_eff = ``x`` for
    every rule (:func:`equilibrium_setting`: y* = y_0/2), heavy-ball momentum ``momentum`` where
    the rule has it, ``ema_betas`` for EMA rules (Adam family: the second moment must follow
    g² ∝ 1/r² while r relaxes; β2 = 0.999 remembers 1000 steps, longer than τ, and even 0.99
    slows the relaxation measurably — so β2 = 0.9, as the §3 verify family uses), plus AdamP at
    AdamW's lr and λ with wd_ratio = 1 (the projection-ratio claim) when both are listed."""
    out = []
    for rule in rules:
        kind = sandbox.info(rule).momentum_kind
        hp = {"momentum": momentum} if kind == "heavy_ball" else \
            {"betas": tuple(ema_betas)} if kind == "ema" else {}
        out.append({"rule": rule, "label": rule, **equilibrium_setting(rule, d=d, x=x, **hp)})
    if "adamw" in rules and "adamp" in rules:
        aw = next(c for c in out if c["rule"] == "adamw")
        out.append({"rule": "adamp", "label": "adamp (wd_ratio=1, AdamW's lr, λ)",
                    "lr": aw["lr"], "weight_decay": aw["weight_decay"], "wd_ratio": 1.0,
                    "betas": tuple(ema_betas)})
    return out


def _hp(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in ("rule", "label")}


def prediction_table(configs, d: int) -> pd.DataFrame:
    """Per config: predicted Δ*, r*, τ (refined finite-ηλ forms), λ_eff and M, and the status."""
    rows = []
    for cfg in configs:
        hp = _hp(cfg)
        eq = predict_equilibrium(cfg["rule"], d, **hp)
        tr = isotropic_traits(cfg["rule"], **hp)
        rows.append({"label": cfg["label"], "rule": cfg["rule"], "lr": hp["lr"],
                     "weight_decay": hp["weight_decay"], "lambda_eff": eq.lam_eff,
                     "M": float(theory.momentum_factor(tr)), "delta_star": eq.angular_step,
                     "r_star": eq.norm, "tau": equilibria_family.prediction(cfg["rule"], hp, d)["tau"],
                     "status": "open" if claim_id(cfg["rule"], hp) == "equilibrium.adai"
                     else eq.status})
    return pd.DataFrame(rows)


def settling_time(pred, k: float, settle: float = 3.0, r0: float = 1.0, tol: float = 0.05) -> float:
    """Steps before the measurement window: ``settle``·τ, or longer when the start is far from
    the equilibrium — until |y − y*| ≤ tol·y* on the linear relaxation y_t = y* + (y_0 − y*)
    e^{−t/τ}, y = r^{2(k+1)} (τ ln(|y_0 − y*|/(tol y*)); theory.time_to_equilibrium's rule)."""
    p = 2 * (k + 1)
    y0, ys = r0 ** p, pred.norm ** p
    far = pred.time_constant * np.log(abs(y0 - ys) / (tol * ys)) if y0 != ys else 0.0
    return float(max(settle * pred.time_constant, far))


def toy_rows(table: pd.DataFrame, configs, d: int, settle: float = 3.0) -> list[dict]:
    """Verdict rows: Δ* and r* measured after :func:`settling_time` (rms over replicas and
    steps) vs the prediction (5%), τ fitted to the relaxation of r^{2(k+1)} (10%), and the projection
    ratio Δ*(AdamP, wd_ratio 1)/Δ*(AdamW) vs sqrt((1+β1)/(1−β1)) when both ran."""
    rows, late = [], {}
    for cfg in configs:
        hp, label = _hp(cfg), cfg["label"]
        part = table[table["label"] == label]
        pred = predict_equilibrium(cfg["rule"], d, **hp)
        k = float(sandbox.info(cfg["rule"]).homogeneity)
        t_from = settling_time(pred, k, settle)
        m = measure_equilibrium(part, k, t_from)
        late[label] = m["delta"]
        claim = claim_id(cfg["rule"], hp)
        status = "open" if claim == "equilibrium.adai" else None
        where = (f"lr={hp['lr']:.4g}, λ={hp['weight_decay']:.4g}"
                 + "".join(f", {k}={v}" for k, v in hp.items() if k not in ("lr", "weight_decay"))
                 + f"; t ≥ {t_from:.0f} of {int(part['step'].max()) + 1}")
        if m["points"] == 0:
            where += " (run shorter than the settling time: no late window)"
        rows.append(claim_row(claim, label, where, pred.angular_step, m["delta"], TOLERANCE,
                              status=status, note="rms angular step Δ* (rad)"))
        rows.append(claim_row(claim + ".norm", label, where, pred.norm, m["norm"], TOLERANCE,
                              status=status, note="equilibrium norm r*"))
        tau = equilibria_family.prediction(cfg["rule"], hp, d)["tau"]  # with the projection lag
        # τ is a linearisation about y* = r*^{2(k+1)}: fit from the first step within 2× of the
        # predicted y* (a run that starts far away first relaxes non-linearly).
        steps, rms = series(part, "norm")
        y, y_star = rms ** (2 * (k + 1)), pred.norm ** (2 * (k + 1))
        near = np.abs(y - y_star) <= y_star
        t_fit = float(steps[np.argmax(near)]) if near.any() else 0.0
        try:
            fit = fit_relaxation(part, k, t_fit, tau_guess=tau)
            rows.append(claim_row("equilibrium.time", label, where, tau,
                                  fit["tau"], TIME_TOLERANCE, status=status,
                                  interval=(fit["tau"] - 1.96 * fit["tau_se"],
                                            fit["tau"] + 1.96 * fit["tau_se"]),
                                  note=f"fitted τ from t = {t_fit:.0f}, where y is within 2× of "
                                       f"y* (interval from the fit's covariance: a lower bound, "
                                       f"recorded points correlate)"))
        except (RuntimeError, TypeError) as e:  # no convergence, or too few points: say so
            rows.append(claim_row("equilibrium.time", label, where, tau,
                                  float("nan"), TIME_TOLERANCE, status=status,
                                  note=f"relaxation fit failed: {e}"))
    ratio_label = "adamp (wd_ratio=1, AdamW's lr, λ)"
    if ratio_label in late and "adamw" in late:
        aw = next(c for c in configs if c["label"] == "adamw")
        b1 = float(aw.get("betas", sandbox.info("adamw").defaults["betas"])[0])
        rows.append(claim_row("equilibrium.projection_ratio", "adamp/adamw", "same lr and λ; "
                              "AdamP wd_ratio = 1", float(np.sqrt((1 + b1) / (1 - b1))),
                              late[ratio_label] / late["adamw"], TOLERANCE,
                              note="ratio of equilibrium Δ*: projection's 'slowing down of the "
                                   "slowdown'"))
    return rows


def net_equilibria(out, problem: str = "digits-bnmlp", device: str = "cpu", seeds=(0,),
                   warm: float = 3.0, window: float = 1.0, min_window: int = 200):
    """The ``verify`` nets family's equilibrium runs on ``problem`` at a chosen size.

    ``warm``·τ steps after a 100-step burn-in and matched start, then a window of
    max(``min_window``, ``window``·τ) steps (the family's quick size is warm 3, window 1,
    min_window 200). Runs are cached under ``out/nets/runs``. Returns (rows, probe frame).
    """
    from sandbox.problems import get_problem
    from sandbox.verify.base import VerifyConfig
    from sandbox.verify.families import nets

    cfg = VerifyConfig(quick=True, device=device, out=out)
    plan = {"seeds": list(seeds), "warm": warm, "window": window, "min_window": min_window}
    rows, frames = nets.equilibrium_rows(cfg, get_problem(problem, device=device), plan)
    return pd.DataFrame(rows), pd.concat(frames, ignore_index=True)


def draw_layers(probes: pd.DataFrame, axes=None):
    """Per rule: each scale-invariant layer's Δ_t (markers, rms per 25 steps over seeds), the
    predicted Δ* (a line above them) and the measurement window (shaded). Returns the figure."""
    import matplotlib.pyplot as plt

    from sandbox.plotting import MEASURED, colors, predicted_kw, style_legend

    from .style import use_style

    use_style()
    inv = probes[probes["scale_invariant"].astype(bool) & (probes["step"] > 0)]
    rules = list(dict.fromkeys(inv["rule"]))
    if axes is None:
        ncols = min(2, len(rules))
        fig, axes = plt.subplots((len(rules) + ncols - 1) // ncols, ncols, squeeze=False,
                                 figsize=(4.2 * ncols + 1.6, 3.0 * ((len(rules) + ncols - 1) // ncols)),
                                 layout="constrained")
        for ax in list(axes.flat)[len(rules):]:
            ax.set_visible(False)
        axes = list(axes.flat)
    palette = colors(inv["layer"])
    for ax, rule in zip(axes, rules):
        p = inv[inv["rule"] == rule]
        ax.axvspan(float(p["window_start"].iloc[0]), float(p["window_stop"].iloc[0]),
                   color="#009E73", alpha=0.12, lw=0, zorder=0)
        for layer, g in p.groupby("layer", sort=False):
            b = g.assign(bin=(g["step"] // 25) * 25 + 12.5).groupby("bin")["delta"]
            rms = b.apply(lambda v: float(np.sqrt(np.mean(np.square(v)))))
            ax.plot(rms.index, rms.to_numpy(), color=palette[layer], **{**MEASURED, "ms": 3})
        ax.plot([p["step"].min(), p["step"].max()], [float(p["predicted"].iloc[0])] * 2,
                **predicted_kw("k"))
        ax.set(yscale="log", title=rule, xlabel="training step", ylabel="angular update Δ_t (rad)")
    style_legend(axes[len(rules) - 1], list(palette.items()), outside=True,
                 entries=(("predicted Δ*", {"ls": "-", "lw": 1.6, "color": "k"}),
                          ("measured (rms per 25 steps)", MEASURED)))
    return axes[0].figure

"""Root-free rules (k = −1) on the noise-driven toy: their filter read off the stage chain, the
predictions of theory.rootfree for them, and the crossover measurement.

A root-free rule divides by the preconditioner P = B·v + λ (no square root). Read from its chain:

- ``scale_by_rootfree_adam`` (rfadamw): EMA m of the raw gradient, divided by the CURRENT P
  (filter on raw gradients, gain 1 − β1), v's EMA coefficient β2 = ``betas[1]``;
- ``precondition_rootfree`` then ``heavy_ball`` (rfrmsprop): the gradient is preconditioned
  first and then filtered (gain 1 − dampening), v's coefficient 1 − ``lr_cov``; an
  ``add_decayed_weights`` between them is an L2 term filtered by the heavy ball (coupled).
The damping λ is the rule's ``eps``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

import sandbox
import theory
from theory.rootfree import rootfree_delta_profile, rootfree_stationary

from .effective_step import series


def rootfree_filter(name: str, **hp) -> dict:
    """The root-free filter of a registered rule: beta, beta2, gain, precondition_first, damping,
    batch_size, decay ('decoupled' factor or 'coupled' L2), weight_decay, projected."""
    spec = sandbox.info(name)
    full = {**spec.defaults, **hp}
    names = [s.name for s in spec.stages(full)]
    if "scale_by_rootfree_adam" in names:
        beta, beta2 = float(full["betas"][0]), float(full["betas"][1])
        gain, first = 1.0 - beta, False
    elif "precondition_rootfree" in names:
        beta, beta2 = float(full.get("momentum", 0.0)), 1.0 - float(full["lr_cov"])
        gain = 1.0 - float(full.get("dampening", 0.0))
        first = names.index("precondition_rootfree") < names.index("heavy_ball")
    else:
        raise ValueError(f"{name} has no root-free preconditioning stage; stages: {names}")
    i_dec = names.index("add_decayed_weights") if "add_decayed_weights" in names else None
    coupled = i_dec is not None and "heavy_ball" in names and i_dec < names.index("heavy_ball")
    return {"beta": beta, "beta2": beta2, "gain": gain, "precondition_first": first,
            "damping": float(full["eps"]), "batch_size": int(full["batch_size"]),
            "decay": "coupled" if coupled else "decoupled",
            "weight_decay": float(full.get("weight_decay", 0.0)),
            "projected": "radial_projection" in names, "lr": float(full["lr"]),
            "wd_ratio": float(full.get("wd_ratio", 0.1))}


def raw_size_sq(name: str, d: int, sigma: float = 1.0, **hp) -> float:
    """N² = ‖g/(B E[g²])‖²/r² on the noise toy (theory.toy_raw_update_size_sq, σ = 1) / σ²."""
    from sandbox.optim.traits import rule_traits

    batch = rootfree_filter(name, **hp)["batch_size"]
    return float(theory.toy_raw_update_size_sq(rule_traits(name, **hp), d, batch)) / sigma ** 2


def predict_geometric(name: str, d: int, sigma: float = 1.0, **hp) -> dict:
    """Lag-corrected growth factor ρ of r² per step and angle Δ (damping neglected), with the
    lag-free values of the catalogue / theory.homogeneity for comparison (``spec_*``).

    Decay: decoupled weight decay (times wd_ratio when projected) enters as c = 1 − ηλ_eff;
    a coupled L2 filtered by the heavy ball as theory.rootfree's ``coupled_decay``
    (projected away by a projection: none).
    """
    f = rootfree_filter(name, **hp)
    N2 = raw_size_sq(name, d, sigma, **hp)
    eta, lam = f["lr"], f["weight_decay"]
    c, lam_c = 1.0, 0.0
    if f["decay"] == "decoupled":
        c = 1.0 - eta * lam * (f["wd_ratio"] if f["projected"] else 1.0)
    elif not f["projected"]:
        lam_c = lam
    p = rootfree_stationary(eta, N2, f["beta"], f["beta2"], gain=f["gain"],
                            precondition_first=f["precondition_first"], c=c,
                            projected=f["projected"], coupled_decay=lam_c)
    # Lag-free (catalogue) values: A² = γ² N² H2, growth (1 − ηλ)² + M η² A² (theory.homogeneity).
    from sandbox.optim.traits import rule_traits

    tr = rule_traits(name, **hp)
    h1, h2 = theory.momentum_filter_sums(tr)
    A = np.sqrt(N2 * h2)
    c0 = c if not lam_c else 1.0 - eta * lam_c * h1
    spec_rho = c0 ** 2 + theory.momentum_factor(tr) * (eta * A) ** 2
    return {**p, "log_rho": float(np.log(p["rho"])), "spec_A": float(A),
            "spec_delta": float(np.arctan(eta * A / c0)), "spec_log_rho": float(np.log(spec_rho)),
            "N2": N2, **{k: f[k] for k in ("beta", "beta2", "gain", "precondition_first")}}


def crossover_radius(d: int, damping: float, batch_size: int = 1, sigma: float = 1.0) -> float:
    """Spec radius r_c = G/sqrt(d λ), G² = B r² E‖g‖² = B (d−1) σ² on the noise toy."""
    return float(theory.rootfree_crossover_radius(np.sqrt(batch_size * (d - 1)) * sigma, d, damping))


def predict_profile(name: str, r, d: int, sigma: float = 1.0, **hp) -> np.ndarray:
    """Quasi-static Δ(r) through the damping crossover (theory.rootfree)."""
    f = rootfree_filter(name, **hp)
    N2 = raw_size_sq(name, d, sigma, **hp)
    unit = f["batch_size"] * (d - 1) * sigma ** 2 / d
    return rootfree_delta_profile(r, f["lr"], N2, f["beta"], f["beta2"], precond_unit=unit,
                                  damping=f["damping"], gain=f["gain"],
                                  precondition_first=f["precondition_first"])


def half_radius(r, delta, level: float) -> float:
    """First radius where Δ(r) falls below ``level`` (log-linear interpolation); NaN if never."""
    r, delta = np.asarray(r, float), np.asarray(delta, float)
    below = np.flatnonzero(delta < level)
    if below.size == 0 or below[0] == 0:
        return float("nan")
    i = below[0]
    x0, x1, y0, y1 = np.log(r[i - 1]), np.log(r[i]), delta[i - 1], delta[i]
    return float(np.exp(x0 + (level - y0) * (x1 - x0) / (y1 - y0)))


def crossover_measurements(df: pd.DataFrame, name: str, d: int, t_transient: float,
                           sigma: float = 1.0, **hp) -> dict:
    """Crossover run: predicted vs measured half-plateau radius, profile deviation, late exponent.

    The plateau is the lag-corrected geometric Δ without damping (predict_geometric); the
    measured half radius is where the measured rms Δ first drops below half of it (after the
    momentum/v transient ``t_transient``); the predicted one is the same crossing of the
    quasi-static profile. ``profile_error``: max |Δ_meas/Δ_profile(r_meas) − 1| after the
    transient. ``late_exponent``: fitted log-log slope of Δ vs t over the last half (→ −1/2).
    """
    t, delta = series(df, "delta")
    _, r = series(df, "norm")
    keep = t >= t_transient
    plateau = predict_geometric(name, d, sigma, **{**hp, "eps": 0.0})["delta"]
    profile = predict_profile(name, r[keep], d, sigma, **hp)
    r_grid = np.geomspace(r[keep][0], max(r[keep][-1], r[keep][0] * 1.01) * 4, 400)
    r_half_pred = half_radius(r_grid, predict_profile(name, r_grid, d, sigma, **hp), plateau / 2)
    r_half_meas = half_radius(r[keep], delta[keep], plateau / 2)
    late = t >= t.max() / 2
    slope = np.polyfit(np.log(t[late]), np.log(delta[late]), 1)[0]
    f = rootfree_filter(name, **hp)
    bv = series(df, "bv", "mean")[1][-1] if (df["quantity"] == "bv").any() else float("nan")
    return {"plateau": plateau, "r_half_pred": r_half_pred, "r_half_meas": r_half_meas,
            "r_c": crossover_radius(d, f["damping"], f["batch_size"], sigma),
            "profile_error": float(np.max(np.abs(delta[keep] / profile - 1))),
            "late_exponent": float(slope), "bv_over_damping_end": bv / f["damping"],
            "t": t[keep], "r": r[keep], "profile": profile}


def steps_to_radius(name: str, r_end: float, d: int, r0: float = 1.0, sigma: float = 1.0,
                    **hp) -> float:
    """Predicted steps for the rms radius to grow from r0 to r_end (quasi-static, with damping):
    ∫ d ln r² / ln ρ(r), ρ(r) from theory.rootfree.rootfree_stationary."""
    f = rootfree_filter(name, **hp)
    N2 = raw_size_sq(name, d, sigma, **hp)
    unit = f["batch_size"] * (d - 1) * sigma ** 2 / d
    radii = np.geomspace(r0, r_end, 40)
    rates = np.array([np.log(rootfree_stationary(
        f["lr"], N2, f["beta"], f["beta2"], gain=f["gain"], precondition_first=f["precondition_first"],
        damping_ratio=f["damping"] * x * x / unit)["rho"]) for x in radii])
    return float(np.trapezoid(1.0 / rates, 2 * np.log(radii)))

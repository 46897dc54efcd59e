"""Weight-decay equilibria on the noise-driven toy (docs/theory.md §3): settings, measurements.

With decay the norm settles where shrinking by the decay balances the growth by the noisy
update; at equilibrium the rms angular step is Δ* = sqrt(2 η λ_eff / M) and
y = r^{2(k+1)} relaxes to y* = M η A²/(2 λ_eff) with time constant τ = 1/(2(k+1) η λ_eff)
(theory.equilibrium). The helpers here choose hyperparameters from those predictions (so every
rule is run at the same η·λ_eff and relaxes within a few τ), and measure Δ*, r* and τ from a
run of :func:`sandbox.experiments.effective_step.run_noise_toy`.

>>> hp = equilibrium_setting("adamw", x=2e-3)                    # doctest: +SKIP
>>> df = run_noise_toy("adamw", 1500, 64, 64, **hp)               # doctest: +SKIP
>>> measure_equilibrium(df, k=0, t_from=1000)                     # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit

import sandbox
import theory

from .effective_step import series
from sandbox.optim.traits import rule_traits


def isotropic_traits(name: str, **hp):
    """The rule's traits with Adai's adaptive inertia replaced by its isotropic value 1 − β0.

    theory.equilibrium flags Adai open and returns NaN; the isotropic traits give the
    mean-field prediction derived in theory.homogeneity.adai_momentum_factor (the mean
    of v̂_i/v̄ is exactly 1, so the mean inertia is 1 − β0).
    """
    tr = rule_traits(name, **hp)
    if not tr.adaptive_inertia:
        return tr
    # theory.equilibrium also recognises Adai by name: rename the isotropic stand-in.
    return dataclasses.replace(tr, adaptive_inertia=False, name=f"isotropic {name}")


def equilibrium_setting(name: str, *, d: int = 64, x: float = 2e-3, y_ratio: float = 0.5,
                        r0: float = 1.0, **hp) -> dict:
    """Hyperparameters (``hp`` plus lr, weight_decay) with η·λ_eff = ``x`` and y* = y_ratio·y_0.

    The default y* = y_0/2 approaches the equilibrium from above: the angular step grows from
    Δ*/2 to Δ*, so the large first steps of bias-corrected EMAs (Adam, Adai) and the projection
    lag (κΔ², theory.homogeneity.projection_lag_coefficient) stay small during the relaxation.

    y* = M η² A²/(2x) (theory.equilibrium) gives η = sqrt(2 x y*/(M A²)) with A from
    theory.toy_update_size_sq at D = sqrt(2x/M), then λ = x/(η·λ_eff per unit λ).
    Raises ValueError when the rule's decay has no radial effect (coupled L2 projected away).
    """
    tr = isotropic_traits(name, **hp)
    k = float(tr.homogeneity)
    unit = float(theory.effective_decay(1.0, tr, hp.get("wd_ratio", 0.1)))
    if not unit > 0:
        raise ValueError(f"{name}: its weight decay has no radial effect here (λ_eff = {unit}); "
                         f"no equilibrium to measure")
    M = float(theory.momentum_factor(tr))
    A2 = float(theory.toy_update_size_sq(tr, d, angular_step=np.sqrt(2 * x / M)))
    y_star = y_ratio * r0 ** (2 * (k + 1))
    eta = float(np.sqrt(2 * x * y_star / (M * A2)))
    return {**hp, "lr": eta, "weight_decay": float(x / (eta * unit))}


def predict_equilibrium(name: str, d: int = 64, sigma: float = 1.0, **hp):
    """theory.equilibrium_prediction (refined finite-ηλ form) at the rule's traits and hp.

    Adai/AdaiW use :func:`isotropic_traits` (status open). σ ≠ 1 rescales A (k = 1: A ∝ σ;
    k = 0: none) — passed as the scale-free update size.
    """
    spec = sandbox.info(name)
    full = {**spec.defaults, **hp}
    tr = isotropic_traits(name, **hp)
    k = float(tr.homogeneity)
    D_guess = np.sqrt(2 * full["lr"] * max(float(theory.effective_decay(
        full["weight_decay"], tr, full.get("wd_ratio", 0.1))), 0.0) / theory.momentum_factor(tr))
    A = float(theory.toy_update_size(tr, d, angular_step=D_guess)) * (sigma if k == 1 else 1.0)
    gt = np.sqrt(d - 1.0) * sigma
    return theory.equilibrium_prediction(full["lr"], full["weight_decay"], tr,
                                         full.get("wd_ratio", 0.1), A=A, d=d,
                                         grad_norm_unit=gt, refined=True)


def measure_equilibrium(df: pd.DataFrame, k: float, t_from: float) -> dict:
    """rms Δ* and r* = (E r^{2(k+1)})^{1/(2(k+1))} over the steps t ≥ t_from, with the 5–95%
    replica band of Δ averaged over the window."""
    t, delta = series(df, "delta")
    _, r = series(df, "norm")
    _, q05 = series(df, "delta", "q05")
    _, q95 = series(df, "delta", "q95")
    w = t >= t_from
    p = 2 * (k + 1)
    return {"delta": float(np.sqrt(np.mean(delta[w] ** 2))),
            "norm": float(np.mean(r[w] ** p) ** (1 / p)),
            "delta_q05": float(np.mean(q05[w])), "delta_q95": float(np.mean(q95[w])),
            "points": int(w.sum())}


def fit_relaxation(df: pd.DataFrame, k: float, t_from: float = 0.0, tau_guess: float = 100.0) -> dict:
    """Fit y_t = y* − (y* − y_a) exp(−(t − t_from)/τ) to y = (rms r)^{2(k+1)}, t ≥ t_from.

    Returns τ, its standard error (from the fit covariance; recorded points are correlated in
    time, so read it as a resolution) and y*.
    """
    t, r = series(df, "norm")
    w = t >= t_from
    tt, y = t[w] - t_from, r[w] ** (2 * (k + 1))

    def model(s, y_star, y_a, tau):
        return y_star - (y_star - y_a) * np.exp(-s / tau)

    p0 = (y[-1], y[0], tau_guess)
    popt, pcov = curve_fit(model, tt, y, p0=p0, maxfev=20000)
    return {"tau": float(popt[2]), "tau_se": float(np.sqrt(max(pcov[2, 2], 0.0))),
            "y_star": float(popt[0])}


def fit_exponents(settings: list[dict], values) -> dict:
    """Least-squares exponents a, b of value ∝ lr^a · weight_decay^b over several runs."""
    X = np.column_stack([np.ones(len(settings)), [np.log(s["lr"]) for s in settings],
                         [np.log(s["weight_decay"]) for s in settings]])
    coef, *_ = np.linalg.lstsq(X, np.log(np.asarray(values, float)), rcond=None)
    return {"lr": float(coef[1]), "weight_decay": float(coef[2])}

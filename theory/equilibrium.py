"""Weight-decay equilibrium of a scale-invariant weight (catalogue §3, docs/theory.md), generic in RuleTraits.

Balance (noise-dominated steady state): decay shrinks r^2 by (1 - eta lam_eff)^2 per step,
the update grows it by M eta^2 ||u||^2 (M = momentum_factor, ||u|| = A r^{-k}):
    2 eta lam_eff r^2 = M eta^2 A^2 r^{-2k}
=>  Delta*^2 = eta^2 A^2 / r*^{2(k+1)} = 2 eta lam_eff / M        (independent of k and A)
    r*^{2(k+1)} = M eta A^2 / (2 lam_eff)
    tau = 1 / (2 (k+1) eta lam_eff)   (e-folding of r^{2(k+1)} - r*^{2(k+1)}; that
          combination obeys a linear ODE, see theory.homogeneity.norm_curve)
Table (lam_eff, M): SGD (lam, 1) -> sqrt(2 eta lam); SGDM with L2 inside heavy ball
(lam/(1-beta), (1+beta)/(1-beta)) -> sqrt(2 eta lam/(1+beta)); SGDP (lam wd_ratio/(1-beta),
1) -> sqrt(2 eta lam wd_ratio/(1-beta)); AdamW (lam, (1+b1)/(1-b1)) ->
sqrt(2 eta lam (1-b1)/(1+b1)); AdamP (lam wd_ratio, 1) -> sqrt(2 eta lam wd_ratio).
All published/spec values are confirmed except two spec entries (see equilibrium_norm and
time_to_equilibrium): AdamP's norm lacks wd_ratio, and the 'SGD family' time (1-beta)/(4 eta
lam) does not hold for SGDP (it is (1-beta)/(4 eta lam wd_ratio)).
The projection remark holds at wd_ratio = 1: SGDP/SGDM = AdamP/AdamW = sqrt((1+b)/(1-b)).
Status: SGD, SGDM published (van Laarhoven 2017; Wan et al. 2021 'Spherical Motion
Dynamics'; Kosson et al. ICML 2024 'Rotational Equilibrium'), AdamW published (Kosson et
al.); SGDP, AdamP, Adam+L2 (conditional), root-free derived here; Adai open.
Regime: noise-dominated gradients (tangential, uncorrelated across steps), eta lam_eff << 1,
Delta << 1 - beta, after ~3 tau steps. All angles are rms over replicas/steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from .homogeneity import RuleTraits, momentum_factor, momentum_filter_sums
from .toy import toy_update_size_sq


def effective_decay(lam, traits: RuleTraits, wd_ratio=0.1, grad_norm_unit=None, d=None, r=None):
    """lam_eff: the fraction of w removed per step, divided by eta.

    decoupled: lam * decay_scale * (wd_ratio if projected);  none: 0.
    coupled (L2 added to the gradient), not preconditioned (k = 1, or rfrmsprop):
        lam * H1, H1 = DC gain of the momentum filter (heavy ball (1-tau)/(1-beta), EMA 1):
        the constant radial input lam w accumulates to H1 lam w per step.
    coupled + projected: 0 (the L2 term is radial and is projected away).
    coupled + preconditioned, k = 0 (Adam+L2): lam H1 / sqrt(v) with per-element
        v = (Gt^2/r^2 + lam^2 r^2)/d: needs grad_norm_unit = Gt (scale-free gradient norm
        r ||g||), d and r; NaN otherwise. Other k: NaN.
    Status: derived.
    """
    if traits.decay == "none" or lam == 0:
        return 0.0
    if traits.decay == "decoupled":
        return lam * traits.decay_scale * (wd_ratio if traits.projected else 1.0)
    if traits.projected:
        return 0.0
    h1, _ = momentum_filter_sums(traits)
    k = float(traits.homogeneity)
    if k == 1 or not traits.l2_preconditioned:
        return lam * h1
    if k == 0 and grad_norm_unit is not None and d is not None and r is not None:
        r = np.asarray(r, dtype=float)
        return lam * h1 * np.sqrt(d) / np.sqrt(grad_norm_unit ** 2 / r ** 2 + lam ** 2 * r ** 2)
    return np.nan


@dataclass
class Equilibrium:
    """Prediction record: rms angular step, rms norm, e-folding time, and why."""

    angular_step: float
    norm: float
    time_constant: float
    lam_eff: float
    status: str
    reason: str
    norm_growth_factor: float = np.nan      # root-free: r^2 multiplier per step


def _ar2(phi1, phi2):
    """Stationary variance per unit noise variance and lag-1 autocorrelation of AR(2)."""
    g0 = (1 - phi2) / ((1 + phi2) * ((1 - phi2) ** 2 - phi1 ** 2))
    return g0, phi1 / (1 - phi2)


def _linear_refined(eta, lam_eff, traits, A2):
    """Exact second moments for unprojected rules that are linear in w between noise kicks.

    w_{t+1} = phi1 w_t + phi2 w_{t-1} - c n_t with martingale-difference noise, so
    E r^2 = gamma0(phi1, phi2) c^2 E||n||^2 exactly and E||w_{t+1}-w_t||^2/E r^2 = 2(1-rho1).
    a = 1 - eta lam_d (decoupled), heavy ball/EMA dampening tau, coupled lam_c:
    phi1 = a + beta - eta (1-tau) lam_c, phi2 = -a beta, c = eta (1-tau).
    """
    b = traits.beta
    tau = b if traits.momentum_kind == "ema" else (traits.dampening if b else 0.0)
    lam_d = lam_eff if traits.decay == "decoupled" else 0.0
    lam_c = 0.0 if traits.decay == "decoupled" else lam_eff / ((1 - tau) / (1 - b))
    a = 1 - eta * lam_d
    phi1, phi2 = a + b - eta * (1 - tau) * lam_c, -a * b
    g0, rho1 = _ar2(phi1, phi2)
    # A2 = E||u||^2 r^{2k} = (1-tau)^2/(1-b^2) E||n||^2 r^{2k} for the unprojected filter
    y = g0 * eta ** 2 * A2 * (1 - b * b) if b else g0 * eta ** 2 * A2
    return np.sqrt(2 * (1 - rho1)), y


def equilibrium_prediction(eta, lam, traits: RuleTraits, wd_ratio=0.1, A=None, d=None,
                           grad_norm_unit=None, refined=False) -> Equilibrium:
    """Full equilibrium prediction (see the module docstring for the derivation).

    A: scale-free rms size of the applied update (||u|| = A r^{-k}); if None and d is given,
    the noise-driven toy value theory.toy.toy_update_size (with the projection correction)
    is used (root-free: the toy value assumes B = 1 and v tracking E[g^2]; v lags while r
    grows geometrically, so pass the measured A = ||u_t||/r_t there).
    grad_norm_unit: scale-free gradient norm Gt = r ||g|| (Adam+L2 only).
    refined: finite-eta lam forms instead of leading order. Tangential updates (projected
    rules, SGD without momentum): tan Delta* = sqrt(2x - x^2)/(1 - x), x = eta lam_eff, and
    r*^{2(k+1)} = eta^2 A^2/(2x - x^2), exact. Other unprojected linear rules (k = 1 with
    momentum, AdamW with v frozen): r* from the exact AR(2) second moments, Delta* as the
    rms chord sqrt(2(1 - rho1)) (angle up to O(eta lam) relative).
    Status: per rule, as in the module docstring (record's .status). Regime: noise-dominated,
    eta lam_eff << 1, measured after ~3 time_constant steps.
    """
    k = float(traits.homogeneity)
    m = momentum_factor(traits)
    if traits.adaptive_inertia:
        b1 = traits.beta
        iso = np.sqrt(2 * eta * lam * (1 - b1) / (1 + b1))
        return Equilibrium(np.nan, np.nan, np.nan, np.nan, "open",
                           "Adai/AdaiW: per-element inertia beta1 = 1 - beta0 v_i/v_bar; "
                           f"open. Isotropic heuristic (v_i = v_bar, beta1 = {b1:g}): "
                           f"Delta* ~ sqrt(2 eta lam (1-b1)/(1+b1)) = {iso:.4g} (measure it)")
    lam_eff = effective_decay(lam, traits, wd_ratio)
    if k <= -1:
        if A is None and d is not None:
            A = np.sqrt(toy_update_size_sq(traits, d))
        ang = np.nan if A is None else float(np.arctan(eta * A / (1 - eta * lam_eff)))
        rho = np.nan if A is None else (1 - eta * lam_eff) ** 2 + m * (eta * A) ** 2
        post = np.sqrt(2 * eta * lam_eff / m) if lam_eff > 0 else np.nan
        return Equilibrium(ang, np.nan, np.nan, lam_eff, "derived",
                           "root-free (k=-1): no equilibrium; r^2 is multiplied by "
                           "(1-eta lam_eff)^2 + M eta^2 A^2 each step (norm_growth_factor); "
                           "if > 1, r grows until B v ~ damping, after which the rule is SGD "
                           f"(lr eta/damping) with Delta* = sqrt(2 eta lam_eff/M) = {post:.4g}",
                           norm_growth_factor=rho)
    if np.isnan(lam_eff):
        return _adam_l2(eta, lam, traits, d, grad_norm_unit)
    if lam_eff == 0:
        why = ("coupled L2 is radial and is projected away" if traits.projected and
               traits.decay == "coupled" else "no weight decay")
        return Equilibrium(np.nan, np.nan, np.nan, 0.0, "derived",
                           f"{why}: no equilibrium, Delta_t -> 1/sqrt((k+1) M t)")
    x = eta * lam_eff
    delta = np.sqrt(2 * x / m)
    if A is None and d is not None:
        A = np.sqrt(toy_update_size_sq(traits, d, angular_step=delta))
    norm = np.nan if A is None else (m * eta * A ** 2 / (2 * lam_eff)) ** (1 / (2 * (k + 1)))
    if refined:
        if traits.projected or (traits.beta == 0 and k == 1):  # update exactly tangential
            delta = np.arctan(np.sqrt(2 * x - x * x) / (1 - x))
            if A is not None:
                norm = (eta ** 2 * A ** 2 / (2 * x - x * x)) ** (1 / (2 * (k + 1)))
        elif not traits.nesterov and (k == 1 or traits.decay == "decoupled"):
            delta, y = _linear_refined(eta, lam_eff, traits, 1.0 if A is None else A ** 2)
            if A is not None:
                norm = y ** (1 / (2 * (k + 1)))
    return Equilibrium(float(delta), float(norm), 1 / (2 * (k + 1) * x), lam_eff,
                       "published" if traits.name in ("sgd", "adamw") else "derived",
                       "Delta*^2 = 2 eta lam_eff / M")


def _adam_l2(eta, lam, traits, d, gt):
    """Adam + L2 (k = 0, L2 through the preconditioner): Delta* depends on the gradient scale.

    With per-element v = (Gt^2/r^2 + lam^2 r^2)/d, the balance 2 eta lam_eff(r) r^2 =
    eta^2 H1^2 d (Gt^2/r^2)/(Gt^2/r^2 + lam^2 r^2) reads, with z = r^2,
    2 lam z^2 sqrt(Gt^2/z + lam^2 z) = eta H1 sqrt(d) Gt^2; noise-dominated (lam r^2 << Gt):
    r*^3 = eta H1 sqrt(d) Gt/(2 lam), Delta*^2 = 2 eta lam_eff(r*)/M. Linearising
    dz/dt = -2 eta lam_eff(z) z + growth(z) gives the time constant numerically.
    Status: conditional prediction derived here (Kosson et al.: no fixed Delta* in terms of
    hyperparameters alone; it moves with the gradient norm).
    """
    if gt is None or d is None:
        return Equilibrium(np.nan, np.nan, np.nan, np.nan, "published",
                           "Adam with L2: no fixed Delta*, it depends on the gradient norm "
                           "(pass grad_norm_unit = r||g|| and d for the conditional value)")
    h1, _ = momentum_filter_sums(traits)
    m = momentum_factor(traits)

    def drift(z):
        s = gt ** 2 / z + lam ** 2 * z
        return -2 * eta * lam * h1 * np.sqrt(d) * z / np.sqrt(s) + eta ** 2 * h1 ** 2 * d * (gt ** 2 / z) / s

    z0 = (eta * h1 * np.sqrt(d) * gt / (2 * lam)) ** (2 / 3)
    z = brentq(drift, z0 * 1e-6, z0 * 1e6, xtol=1e-14 * z0, rtol=1e-13)
    lam_eff = float(effective_decay(lam, traits, grad_norm_unit=gt, d=d, r=np.sqrt(z)))
    dz = 1e-5 * z
    slope = (drift(z + dz) - drift(z - dz)) / (2 * dz)
    return Equilibrium(float(np.sqrt(2 * eta * lam_eff / m)), float(np.sqrt(z)), float(-1 / slope),
                       lam_eff, "derived", "Adam+L2: conditional on the measured gradient norm")


def equilibrium_angular_step(eta, lam, traits: RuleTraits, wd_ratio=0.1, *, A=None, d=None,
                             grad_norm_unit=None, refined=False, return_reason=False):
    """Equilibrium rms angular update Delta* = sqrt(2 eta lam_eff / M) (NaN where none exists).

    Root-free: the constant per-step angle arctan(eta A/(1 - eta lam_eff)) (needs A or d).
    Adam+L2: NaN unless grad_norm_unit and d are given. Adai: NaN (open).
    return_reason=True returns (value, reason). Derivation: module docstring.
    Status: SGD/SGDM/AdamW published (Wan et al.; Kosson et al.), SGDP/AdamP/root-free and the
    conditional Adam+L2 value derived here, Adai open. Regime: noise-dominated steady state,
    eta lam_eff << 1, Delta << 1 - beta, after ~3 time_to_equilibrium steps.
    """
    e = equilibrium_prediction(eta, lam, traits, wd_ratio, A, d, grad_norm_unit, refined)
    return (e.angular_step, e.reason) if return_reason else e.angular_step


def equilibrium_norm(eta, lam, traits: RuleTraits, wd_ratio=0.1, *, A=None, d=None,
                     grad_norm_unit=None, refined=False, return_reason=False):
    """Equilibrium rms norm r* = (M eta A^2 / (2 lam_eff))^{1/(2(k+1))}.

    Noise-driven toy (A from d): SGD (eta (d-1)/(2 lam))^{1/4}; SGDM (eta (d-1)/(2 lam
    (1-beta)))^{1/4}; SGDP (eta (d-1)/(2 lam wd_ratio (1+beta)))^{1/4} (times the small
    buffer-projection factor); AdamW sqrt(eta d/(2 lam)); AdamP
    sqrt(eta d (1-b1) / (2 lam wd_ratio (1+b1) (1 + b1^2 Delta*^2/(1-b1)^2))).
    CORRECTION: the catalogue's AdamP norm sqrt(eta d (1-b1)/(2 lam (1+b1))) omits wd_ratio
    (AdamP decays by lam wd_ratio) and the projection correction (1 + b1^2 D^2/(1-b1)^2)^{-1/2}
    (7% at b1 = .9, D = .045); both confirmed by simulation.
    Status: SGD/SGDM/AdamW published, the others derived here. Regime: as
    equilibrium_angular_step; A (or the toy's d) must describe the applied update.
    """
    e = equilibrium_prediction(eta, lam, traits, wd_ratio, A, d, grad_norm_unit, refined)
    return (e.norm, e.reason) if return_reason else e.norm


def time_to_equilibrium(eta, lam, traits: RuleTraits, wd_ratio=0.1, *, r0=None, r_star=None,
                        tol=0.05, d=None, grad_norm_unit=None):
    """Relaxation time: tau = 1/(2(k+1) eta lam_eff) steps (e-folding of r^{2(k+1)} - y*).

    AdamW 1/(2 eta lam); SGD/SGDM (L2 in momentum) (1-beta)/(4 eta lam); SGDP
    (1-beta)/(4 eta lam wd_ratio); AdamP 1/(2 eta lam wd_ratio).
    CORRECTION: the catalogue's '(1-beta)/(4 eta lam) (SGD family)' is wrong for SGDP (missing
    1/wd_ratio, 10x at the default), and its '~3/(eta lam) steps' budget is < 1 tau for AdamP at
    wd_ratio = .1 (tau = 5/(eta lam)): a run of that length has not equilibrated.
    With r0 and r_star: steps until |y - y*| <= tol y*, y = r^{2(k+1)}, from the exact
    linear relaxation y_t = y* + (y0 - y*) exp(-t/tau): tau ln(|y0 - y*|/(tol y*)).
    Derivation: dy/dt = (k+1)(M eta^2 A^2 - 2 eta lam_eff y) (theory.homogeneity.norm_curve).
    Status: derived (linearisation exact in y; the catalogue's rates confirmed for SGD/SGDM/AdamW).
    """
    e = equilibrium_prediction(eta, lam, traits, wd_ratio, d=d, grad_norm_unit=grad_norm_unit)
    tau = e.time_constant
    if r0 is None or r_star is None or not np.isfinite(tau):
        return tau
    p = 2 * (float(traits.homogeneity) + 1)
    y0, ys = float(r0) ** p, float(r_star) ** p
    return max(0.0, tau * np.log(abs(y0 - ys) / (tol * ys))) if y0 != ys else 0.0


def adai_isotropic_angular_step(eta, lam, beta0=0.1):
    """Heuristic (not a prediction of record): Adai/AdaiW Delta* if v_i = v_bar for all i.

    Then beta1 = 1 - beta0 everywhere, Adai is an EMA-momentum k = 1 rule with lam_eff = lam
    (coupled L2 enters the EMA with gain 1; AdaiW decoupled) and
    Delta* = sqrt(2 eta lam beta0/(2 - beta0)). Status: open (per-element inertia varies
    with v_i/v_bar; the sandbox measures).
    """
    return np.sqrt(2 * eta * lam * beta0 / (2 - beta0))


def equilibrium_relaxation(eta, A, x, k, M=1.0, kappa=0.0) -> dict:
    r"""Equilibrium y* = r*^{2(k+1)} and relaxation time τ with the projection lag κ.

    dy/dt = (k+1) (M η² A²/(1 + κ Δ²) − 2 x y), Δ² (1 + κ Δ²) = η² A²/y, x = η λ_eff
    (theory.homogeneity.norm_curve with A_eff² = A²/(1 + κΔ²), projection_lag_coefficient).
    y* is the root, τ = −1/(dF/dy)(y*). For κ = 0: y* = M η² A²/(2x) and τ = 1/(2(k+1)x)
    (theory.equilibrium). For κ > 0 the growth term rises with y (a larger radius means a
    smaller Δ and less of the buffer projected away), which SLOWS the relaxation: AdamP at
    β1 = 0.9, x = 2e-3 (κΔ*² = 0.32) relaxes in τ ≈ 1.3/(2x), not 1/(2x). Status: derived here.
    """
    def growth(y):
        q = (eta * A) ** 2 / y
        d2 = q if kappa == 0 else (np.sqrt(1 + 4 * kappa * q) - 1) / (2 * kappa)
        return M * (eta * A) ** 2 / (1 + kappa * d2)

    def F(y):
        return (k + 1) * (growth(y) - 2 * x * y)

    y0 = M * (eta * A) ** 2 / (2 * x)
    y_star = brentq(F, y0 * 1e-6, y0 * 2, xtol=1e-14 * y0, rtol=1e-13)
    h = 1e-6 * y_star
    slope = (F(y_star + h) - F(y_star - h)) / (2 * h)
    return {"y_star": float(y_star), "norm": float(y_star ** (1 / (2 * (k + 1)))),
            "tau": float(-1.0 / slope)}

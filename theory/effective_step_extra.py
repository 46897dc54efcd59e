"""Effective-step predictions that theory.homogeneity / theory.equilibrium leave open (§2, §3).

1. Root-free rules (k = −1) in their geometric regime, with the second-moment LAG: the radius
   grows by a constant factor per step, so the EMA v (memory 1/(1−β2) steps) remembers larger
   gradients than the current one and over-estimates E[g²] by c_v = (1−β2)/(1−β2ρ). This
   lowers the scale-free update size A, which lowers the growth factor ρ: a fixed point
   (:func:`rootfree_stationary`). Without the lag (ρ → 1) it reduces to the spec's
   Δ = arctan(ηA), r² × (1 + M η²A²) per step (spec theory.md §2 — with the momentum factor M
   that the spec's r_t = r_0(1+η²A²)^{t/2} omits).
2. The damping crossover profile Δ(r) (:func:`rootfree_delta_profile`), quasi-static.
3. Adai's momentum factor for the §2 asymptote (:func:`adai_momentum_factor`).

Status of all three: derived here (mean-field: per-element second moments replaced by their
mean, uncorrelated tangential noise); checked by ``python -m sandbox verify --only 'asymptote.*'``.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import brentq


def _sums(rho, beta, c, precondition_first):
    """(H2, S) of the lagged filter at radius growth ρ per step (see rootfree_stationary)."""
    if precondition_first:  # u_t = γ Σ β^j g_{t−j}/P_{t−j}
        b = beta / rho
        h2 = 1.0 / (1.0 - beta * beta / rho)
        s = (b * c / (1 - b * c) - beta * b / (1 - beta * b)) / (c - beta) if beta else 0.0
    else:  # u_t = (γ/P_t) Σ β^j g_{t−j}
        h2 = 1.0 / (1.0 - beta * beta * rho)
        s = (beta * c / (1 - beta * c) - beta ** 2 * rho / (1 - beta ** 2 * rho)) / (c - beta * rho) \
            if beta else 0.0
    return h2, s


def rootfree_stationary(eta, N2, beta, beta2, *, gain=None, precondition_first=False, c=1.0,
                        damping_ratio=0.0) -> dict:
    r"""Growth factor ρ of r² per step and angular step Δ of a root-free rule (k = −1).

    Model (noise-driven toy, mean field): g_t ⟂ w_t, uncorrelated, E‖g_t‖² ∝ 1/r_t²; per-element
    preconditioner P_t = B v_t with v_t = β2 v_{t−1} + (1−β2) g_t²; update w_{t+1} = c w_t − η u_t
    with either (rfadamw) u_t = (γ/P_t) Σ_j β^j g_{t−j} (filter on raw gradients, γ = 1−β), or
    (rfrmsprop, ``precondition_first``) u_t = γ Σ_j β^j g_{t−j}/P_{t−j} (heavy ball on the
    preconditioned gradient, γ = 1). ``N2`` = ‖g/P⁰‖²/r², the scale-free size of the raw
    preconditioned gradient when v equals E[g²] (theory.toy.toy_raw_update_size_sq).

    Self-similar ansatz r_t² ∝ ρ^t: then ‖g_{t−j}‖² = ‖g_t‖² ρ^j and
    v_t = c_v E[g_t²] with the lag c_v = (1−β2)/(1−β2ρ). Using ⟨w_k, g_k⟩ = 0 and
    w_t = c^{t−k} w_k − η Σ_{s=k}^{t−1} c^{t−1−s} u_s (exact),

        U² = ‖u‖²/r² = γ² f² N² H2,      R = ⟨ŵ, u⟩/r = −η γ² f² N² S,
        ρ  = c² − 2cηR + η²U²,           tan Δ = η sqrt(U² − R²)/(c − ηR),

    with f = 1/(c_v + damping_ratio) and, filter on raw gradients,
    H2 = 1/(1−β²ρ), S = [βc/(1−βc) − β²ρ/(1−β²ρ)]/(c−βρ); preconditioner first,
    H2 = 1/(1−β²/ρ), S = [b c/(1−b c) − βb/(1−βb)]/(c−β), b = β/ρ. The fixed point ρ is
    found by bracketing on (c², 1/β2): ρ < 1/β2 always — once η²A² would exceed 1−β2 the
    lag throttles the growth (v then decays at its own rate and the rule acts like SGD with an
    exponentially growing learning rate).
    Check of the limit ρ → 1, c = 1: 2S + H2 = 1/(1−β)² (EMA) so ρ − 1 = η²N², i.e.
    M·η²A² with A² = U² = (1−β)/(1+β)N² and M = (1+β)/(1−β) (theory.homogeneity).
    ``damping_ratio`` = λ/P⁰ (damping over the lag-free preconditioner at the current radius):
    quasi-static use in the crossover (rootfree_delta_profile).
    Neglected: O(1−β2) fluctuation terms (Jensen on 1/v², +3·2(1−β2)/(1+β2) on A², and the
    m–v correlation, about −4(1−β2)); the slow ŵ rotation within v's memory.
    Returns dict(rho, delta, A=U, lag=c_v, radial=R).
    """
    gamma = (1.0 - beta) if gain is None else gain
    lo = c * c * (1 + 1e-15)
    hi = 1.0 / beta2 if beta2 > 0 else c * c + 10.0 + 10 * eta ** 2 * N2
    if not precondition_first and beta:
        hi = min(hi, 1.0 / beta ** 2)
    hi *= 1 - 1e-13

    def parts(rho):
        lag = (1.0 - beta2) / (1.0 - beta2 * rho)
        f2 = 1.0 / (lag + damping_ratio) ** 2
        h2, s = _sums(rho, beta, c, precondition_first)
        return lag, gamma ** 2 * f2 * N2 * h2, -eta * gamma ** 2 * f2 * N2 * s

    def excess(rho):
        _, u2, rad = parts(rho)
        return c * c - 2 * c * eta * rad + eta ** 2 * u2 - rho

    # excess > 0 just above c²; it crosses zero once before any pole of H2 (where it turns up):
    # take the first sign change on a fine grid, then refine.
    grid = lo + (hi - lo) * np.logspace(-14, 0, 600)
    vals = np.array([excess(x) for x in grid])
    neg = np.flatnonzero(vals < 0)
    if neg.size == 0:
        raise ValueError(f"no stationary growth factor: eta={eta!r} too large for beta={beta!r} "
                         f"(the momentum sum diverges before the growth balances)")
    i = neg[0]
    rho = brentq(excess, lo if i == 0 else grid[i - 1], grid[i], xtol=1e-15, rtol=1e-14)
    lag, u2, rad = parts(rho)
    delta = np.arctan2(eta * np.sqrt(max(u2 - rad * rad, 0.0)), c - eta * rad)
    return {"rho": rho, "delta": float(delta), "A": float(np.sqrt(u2)), "lag": lag, "radial": rad}


def rootfree_delta_profile(r, eta, N2, beta, beta2, *, precond_unit, damping, gain=None,
                           precondition_first=False, c=1.0) -> np.ndarray:
    """Quasi-static Δ(r) through the damping crossover: rootfree_stationary at each radius.

    ``precond_unit`` = P⁰ r² (scale-free lag-free preconditioner; noise-driven toy:
    B (d−1) σ²/d per element), so damping_ratio = damping · r²/precond_unit. For r ≪ r_c
    (theory.homogeneity.rootfree_crossover_radius) Δ is the lagged plateau; for r ≫ r_c the rule
    is SGD with learning rate η/damping: Δ → η γ sqrt(H2 (d−1)) σ/(damping r²), the k = 1 law
    whose Δ_t → 1/sqrt(2 M t) returns. Assumes the growth rate changes slowly on v's memory
    1/(1−β2) (the crossover spans ln(16)/(ρ − 1) steps from r_c/2 to 2 r_c).
    """
    r = np.atleast_1d(np.asarray(r, dtype=float))
    out = [rootfree_stationary(eta, N2, beta, beta2, gain=gain, precondition_first=precondition_first,
                               c=c, damping_ratio=damping * x * x / precond_unit)["delta"] for x in r]
    return np.asarray(out)


def adai_momentum_factor(beta0, ratio_var=0.0):
    r"""M of Adai's per-element EMA for the §2 asymptote Δ_t → 1/sqrt(2 M t) (k = 1).

    Adai's β1,i = 1 − β0 x_i with x_i = v̂_i/v̄; the mean of x over the elements is exactly 1
    (v̄ IS the mean of v̂), so the mean inertia is 1 − β0 whatever the spread (when no clipping).
    For an EMA m_i = β_i m_i + (1−β_i) g_i the DC gain is 1 for every β_i, so each element still
    pushes the radius as plain SGD does (growth of r² = η² E‖g‖² per step), while the step size
    is E‖u‖² = η² Σ_i E[g_i²] (1−β_i)/(1+β_i). Hence, for isotropic noise,

        1/M = mean_i (1−β_i)/(1+β_i) = mean_i β0 x_i/(2 − β0 x_i)
            ≈ β0/(2−β0) + ½ f''(1) Var(x),   f''(1) = 4 β0²/(2 − β0)³,

    M = (2−β0)/β0 = 19 at the default β0 = 0.1 (same as EMA momentum 0.9). ``ratio_var``:
    Var(v̂_i/v̄) — about 2(1−β2)/(1+β2) ≈ 0.01 on the noise toy, a 0.06% correction.
    Status: derived here (mean field; per-element β1 slowly varying and uncorrelated with the
    current gradient). Regime: Δ ≪ β0, no clipping (β0 x_i < 1).
    """
    inv = beta0 / (2.0 - beta0) + 0.5 * 4 * beta0 ** 2 / (2.0 - beta0) ** 3 * ratio_var
    return 1.0 / inv

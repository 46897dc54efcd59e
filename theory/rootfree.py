"""Root-free rules (k = −1) in their geometric regime and through the damping crossover (§2, §3).

The radius grows by a constant factor per step, so the EMA v (memory 1/(1−β2) steps) remembers
larger gradients than the current one and over-estimates E[g²] by c_v = (1−β2)/(1−β2ρ). This
lowers the scale-free update size A, which lowers the growth factor ρ: a fixed point
(:func:`rootfree_stationary`). Without the lag (ρ → 1) it reduces to the catalogue's
Δ = arctan(ηA), r² × (1 + M η²A²) per step (docs/theory.md §2 — with the momentum factor M
that the published-style r_t = r_0(1+η²A²)^{t/2} omits). :func:`rootfree_delta_profile` is the
quasi-static Δ(r) through the damping crossover.

Status: derived here (mean field: per-element second moments replaced by their mean,
uncorrelated tangential noise); checked by ``python -m sandbox verify --only 'asymptote.*'``
and ``--only 'equilibrium.rootfree*'``.
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


def _coupled_decay_gain(beta, rho, delta, memory=60.0):
    """G = Σ_j (β/√ρ)^j E cos θ_j for the radial part of a decay term filtered by a heavy ball.

    The steps u_s of a heavy ball driven by uncorrelated noise are correlated as β^{|s−s'|}, so
    the angle swept in j steps has E θ_j² = Δ² C_j, C_j = j + 2 Σ_{k=1}^{j−1} (j−k) β^k
    (ballistic j²Δ² within the memory, diffusive M j Δ² beyond); E cos θ ≈ exp(−E θ²/2)
    (Gaussian angle). Δ = 0 gives 1/(1 − β/√ρ). Truncated after ``memory``/(1−β) terms.
    """
    if not beta:
        return 1.0
    n = int(memory / (1.0 - beta)) + 2
    j = np.arange(n, dtype=float)
    pw = beta ** j
    s1 = np.concatenate([[0.0], np.cumsum(pw)[:-1] - 1.0])  # Σ_{k=1}^{j−1} β^k at index j
    s2 = np.concatenate([[0.0], np.cumsum(j * pw)[:-1]])    # Σ_{k=1}^{j−1} k β^k
    C = j + 2.0 * (j * s1 - s2)
    return float(np.sum((beta / np.sqrt(rho)) ** j * np.exp(-0.5 * delta ** 2 * C)))


def rootfree_stationary(eta, N2, beta, beta2, *, gain=None, precondition_first=False, c=1.0,
                        damping_ratio=0.0, projected=False, coupled_decay=0.0) -> dict:
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
    ``projected`` (AdamP's projection on the applied update, buffer kept): R = 0 exactly, so
    ρ = c² + η²U² (M = 1, no momentum cross term) and tan Δ = ηU/c, with the buffer's lagging
    radial part removed, U_p² = U²/(1 + β²Δ²/(1−β)²) (theory.toy.toy_update_size_sq).
    ``coupled_decay`` λ_c (root-free RMSProp's L2, added after preconditioning and filtered by
    the heavy ball): its radial push along ŵ_t is γλ_c Σ_j β^j ⟨ŵ_t, w_{t−j}⟩ with
    ‖w_{t−j}‖ = ρ^{−j/2} r_t and the angle θ_j between w_t and w_{t−j} (the weight rotates
    within the filter's memory: at β = 0.961, Δ = 0.015 this removes ~13% of the decay), so
    c = 1 − ηγλ_c G, G = Σ_j (β/√ρ)^j exp(−E θ_j²/2) (:func:`_coupled_decay_gain`), solved
    together with ρ and Δ by iteration.
    Neglected: O(1−β2) fluctuation terms (Jensen on 1/v², +3·2(1−β2)/(1+β2) on A², and the
    m–v correlation, about −4(1−β2)); the slow ŵ rotation within v's memory.
    Returns dict(rho, delta, A=U, lag=c_v, radial=R).
    """
    gamma = (1.0 - beta) if gain is None else gain
    # ρ > β² keeps the preconditioner-first sums finite; ρ < 1/β2 keeps the lag finite.
    lo = max(beta * beta * (1 + 1e-9), 1e-9) if precondition_first else 1e-9
    hi = 1.0 / beta2 if beta2 > 0 else c * c + 10.0 + 10 * eta ** 2 * N2
    if not precondition_first and beta:
        hi = min(hi, 1.0 / beta ** 2)
    hi *= 1 - 1e-13

    c_fixed = c
    delta_rot = [0.0]  # Δ used for the rotation of w within the filter's memory (iterated)

    def decay_factor(rho):
        if not coupled_decay:
            return c_fixed
        return c_fixed - eta * gamma * coupled_decay * _coupled_decay_gain(beta, rho, delta_rot[0])

    def parts(rho):
        c = decay_factor(rho)
        lag = (1.0 - beta2) / (1.0 - beta2 * rho)
        f2 = 1.0 / (lag + damping_ratio) ** 2
        h2, s = _sums(rho, beta, c, precondition_first)
        u2 = gamma ** 2 * f2 * N2 * h2
        if projected:
            s = 0.0
            if beta:  # the buffer's lagging radial part is projected away (theory.toy):
                # U_p² = U²/(1 + κ η² U_p²), κ = β²/((1−β)² c²)  ⇒  a quadratic in U_p².
                kap = eta ** 2 * beta ** 2 / ((1 - beta) ** 2 * c ** 2)
                u2 = (np.sqrt(1 + 4 * kap * u2) - 1) / (2 * kap)
        return lag, u2, -eta * gamma ** 2 * f2 * N2 * s

    def excess(rho):
        c = decay_factor(rho)
        _, u2, rad = parts(rho)
        return c * c - 2 * c * eta * rad + eta ** 2 * u2 - rho

    # The stable fixed point is a + → − crossing of excess (growth above the assumed ρ below it,
    # below it above): scan a fine grid and take the crossing nearest ρ = 1 (near the poles of
    # the filter sums, e.g. ρ → β², the sums diverge and excess changes sign spuriously).
    grid = lo + (hi - lo) * np.concatenate([np.logspace(-14, -2, 120), np.linspace(1e-2, 1, 200)[1:]])
    with np.errstate(all="ignore"):
        vals = np.array([excess(x) for x in grid])
    cross = np.flatnonzero((vals[:-1] > 0) & (vals[1:] <= 0))
    if cross.size == 0:
        raise ValueError(f"no stationary growth factor for eta={eta!r}, beta={beta!r}, "
                         f"beta2={beta2!r}, c={c!r}: the filter sums diverge before growth balances")
    i = cross[np.argmin(np.abs(grid[cross] - 1.0))]
    rho = brentq(excess, grid[i], grid[i + 1], xtol=1e-15, rtol=1e-14)
    for _ in range(6 if coupled_decay else 0):  # rotation correction: Δ ↔ decay gain
        lag, u2, rad = parts(rho)
        cc = decay_factor(rho)
        delta_rot[0] = float(np.arctan2(eta * np.sqrt(max(u2 - rad * rad, 0.0)), cc - eta * rad))
        lo_i, hi_i = max(lo, rho * 0.9), min(hi, rho * 1.1)
        try:
            rho = brentq(excess, lo_i, hi_i, xtol=1e-15, rtol=1e-14)
        except ValueError:
            break
    lag, u2, rad = parts(rho)
    c = decay_factor(rho)
    delta = np.arctan2(eta * np.sqrt(max(u2 - rad * rad, 0.0)), c - eta * rad)
    return {"rho": rho, "delta": float(delta), "A": float(np.sqrt(u2)), "lag": lag, "radial": rad,
            "c": float(c)}


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
    # Δ(r) is smooth in log r: solve on ≤ 48 radii and interpolate in log–log.
    knots = np.unique(np.geomspace(r.min(), r.max(), 48)) if r.size > 48 else np.unique(r)
    vals = [rootfree_stationary(eta, N2, beta, beta2, gain=gain, precondition_first=precondition_first,
                                c=c, damping_ratio=damping * x * x / precond_unit)["delta"]
            for x in knots]
    if knots.size == 1:
        return np.full_like(r, vals[0])
    return np.exp(np.interp(np.log(r), np.log(knots), np.log(vals)))

"""Flat-minima selection: escape times (catalogue §5, docs/theory.md), Kramers / diffusion theory.

Model: near a minimum the gradient noise has covariance C ~ H/B (B batch size). A rule with
preconditioner P (fixed by v ~ E[g^2] ~ H/B at the minimum) and momentum DC gain H1 (heavy
ball 1/(1-beta), EMA or none 1) is, on slow time scales, overdamped Langevin with mobility
eta H1/P per step and, by the noisy-quadratic stationary variance s = eta H1 C/(2 P H),
an effective temperature along a direction of curvature H
    T(H) = H s = eta H1 H / (2 B P):   SGD eta H/(2B); Adam (P = sqrt(H/B)) eta sqrt(H)/(2 sqrt B);
    root-free (P = B E g^2 + damping = H + damping) eta H/(2B (H + damping)) -> eta/(2B).
Arrhenius: log tau ~ Delta L / T(H_a) (+ saddle term, + log prefactor).
So the exponent of H_a in log tau is -(k+1)/2 for homogeneity k: -1 (SGD, heavy ball, Adai),
-1/2 (Adam), 0 (root-free).
"""
from __future__ import annotations

import numpy as np
from scipy.integrate import cumulative_trapezoid, trapezoid

from .homogeneity import RuleTraits, momentum_filter_sums

_FAMILIES = {
    "sgd": (1.0, "published", "Xie, Sato & Sugiyama, ICLR 2021 (diffusion theory)"),
    "heavy_ball": (1.0, "published", "Xie et al., ICML 2022 (Adaptive Inertia), momentum theorem"),
    "adam": (0.0, "published", "Xie et al., ICML 2022 (Adaptive Inertia), Adam theorem"),
    "adai": (1.0, "published", "Xie et al., ICML 2022 (Adaptive Inertia), Adai theorem"),
    "rootfree": (-1.0, "open", "derived here (heuristic, Gibbs temperature eta/(2B))"),
}
_ALIASES = {"sgdm": "heavy_ball", "momentum": "heavy_ball", "adamw": "adam", "adaiw": "adai",
            "rfadamw": "rootfree", "rfrmsprop": "rootfree", "root_free": "rootfree"}


def _family(rule_family, beta):
    """(k, H1, name, status, citation) for a family name or RuleTraits."""
    if isinstance(rule_family, RuleTraits):
        h1, _ = momentum_filter_sums(rule_family)
        return float(rule_family.homogeneity), h1, rule_family.name or "traits", "derived", "derived here"
    name = _ALIASES.get(rule_family.lower(), rule_family.lower())
    if name not in _FAMILIES:
        raise KeyError(f"unknown rule family {rule_family!r}; known {sorted(_FAMILIES)}")
    k, status, cite = _FAMILIES[name]
    h1 = 1.0 / (1.0 - beta) if name == "heavy_ball" else 1.0
    return k, h1, name, status, cite


def effective_temperature(H, B, eta, rule_family="sgd", beta=0.0, damping=0.0, eps=0.0):
    """T(H) = eta H1 H / (2 B P(H)) (module docstring); SGD: T = eta H/(2B).

    Derivation: leading order in eta of the noisy-quadratic stationary variance (theory.
    noisy_quadratic): s = eta H1 C/(2 P H), C = H/B, and T = H s (equipartition).
    'heavy_ball' is torch's form (lr multiplies the buffer: effective lr eta/(1-beta)); EMA
    momentum (Adam, Adai, rfadamw) leaves T unchanged at leading order.
    Assumptions: v ~ E[g^2] ~ H/B at the minimum (noise-dominated, beta2 -> 1), eta H/P << 1.
    Status: SGD published (Xie et al. 2021); others derived in the same framework.
    """
    k, h1, *_ = _family(rule_family, beta)
    H = np.abs(np.asarray(H, dtype=float))
    if k == 1:
        P = np.ones_like(H)
    elif k == 0:
        P = np.sqrt(H / B) + eps
    elif k == -1:
        P = H + damping
    else:
        raise ValueError("homogeneity must be 1, 0 or -1")
    return eta * h1 * H / (2.0 * B * P)


def predicted_log_escape_time(rule_family, H_a, B, eta, barrier, beta=0.0, damping=0.0, eps=0.0,
                              H_b=None, s=1.0):
    """Exponent of the escape time: log tau ~ Delta L (s/T(H_a) + (1 - s)/T(|H_b|)).

    SGD: 2 B Delta L/(eta H_a) (s = 1; Xie et al. 2021 give the path-dependent mix with the
    saddle curvature H_b, s in (0, 1)); heavy ball (torch form): 2 B (1-beta) Delta L/(eta
    H_a); Adam: 2 sqrt(B) Delta L/(eta sqrt(H_a)); Adai: 2 B Delta L/(eta H_a); root-free:
    2 B Delta L (H_a + damping)/(eta H_a) -> 2 B Delta L/eta, independent of H_a.
    The log prefactor (log of 2 pi/(mobility sqrt(H_a |H_b|)) in time units) is omitted: the
    slope against H_a^exponent is the test. Status: per family (predicted_sharpness_law).
    Regime: Delta L >> T, noise-dominated minimum, quasi-static preconditioner (beta2 -> 1).
    """
    T_a = effective_temperature(H_a, B, eta, rule_family, beta, damping, eps)
    out = np.asarray(barrier, dtype=float) * s / T_a
    if H_b is not None and s != 1.0:
        T_b = effective_temperature(H_b, B, eta, rule_family, beta, damping, eps)
        out = out + np.asarray(barrier, dtype=float) * (1.0 - s) / T_b
    return out


def predicted_sharpness_law(rule_family, B=None, eta=None, barrier=None, beta=0.0, damping=0.0,
                            eps=0.0):
    """How log tau depends on the sharpness H_a at fixed barrier (k = sharpness factor).

    Returns {'law': '1/k' | '1/sqrt(k)' | 'k^0', 'exponent': -(k_hom+1)/2, 'slope': coefficient
    of H_a^exponent in log tau (needs B, eta, barrier), 'intercept', 'inverse_H_slope' (extra
    1/H_a term from root-free damping or Adam's eps), 'status', 'citation'}.
    SGD slope 2 B Delta L/eta; heavy ball 2 B (1-beta) Delta L/eta; Adam 2 sqrt(B) Delta L/eta
    (+ 2 B Delta L eps/eta on 1/H_a); Adai 2 B Delta L/eta; root-free intercept 2 B Delta L/eta
    (+ 2 B Delta L damping/eta on 1/H_a). Constants are leading-order Gibbs values (derived
    here); the published results (Xie et al. 2021, 2022) state the laws (1/H, 1/sqrt(H)) with
    these orders. Protocol: -log(escape rate) against 1/k, 1/sqrt(k) with a 95% band.
    """
    k, h1, name, status, cite = _family(rule_family, beta)
    expo = -(k + 1.0) / 2.0
    law = {-1.0: "1/k", -0.5: "1/sqrt(k)", 0.0: "k^0"}.get(expo, f"k^{expo:g}")
    out = {"law": law, "exponent": expo, "slope": None, "intercept": 0.0,
           "inverse_H_slope": 0.0, "status": status, "citation": cite, "family": name}
    if B is None or eta is None or barrier is None:
        return out
    base = 2.0 * barrier / (eta * h1)
    if k == 1:
        out["slope"] = base * B
    elif k == 0:
        out["slope"] = base * np.sqrt(B)
        out["inverse_H_slope"] = base * B * eps
    else:
        out["slope"] = 0.0
        out["intercept"] = base * B
        out["inverse_H_slope"] = base * B * damping
    return out


def kramers_escape_time(barrier, T, H_a, H_b, mobility=1.0):
    """Kramers mean escape time tau = 2 pi / (mobility sqrt(H_a |H_b|)) exp(Delta L / T).

    For overdamped Langevin dx = -mobility U'(x) dt + sqrt(2 mobility T) dW (continuous time)
    in a smooth 1-D well of curvature H_a with a barrier top of curvature H_b.
    SGD mapping (continuous-time approximation): one step = eta (times the heavy-ball gain)
    time units at mobility 1, T = eta H/(2B) (effective_temperature), so tau_steps = tau/eta;
    valid for eta H << 1 (many steps per relaxation time) and Delta L/T >~ 5 (corrections
    O(T/Delta L)); the SGD temperature is state dependent (H varies along the path): Xie et
    al. use H_a at the well and |H_b| at the saddle (the s-mix in predicted_log_escape_time).
    Status: published (Kramers 1940). tau is the mean time to cross well past the saddle
    (the mean first passage to the saddle top itself is ~ tau/2).
    """
    return 2.0 * np.pi / (mobility * np.sqrt(H_a * np.abs(H_b))) * np.exp(np.asarray(barrier) / T)


def quartic_double_well(H_a, barrier):
    """U(x) = Delta L ((x/a)^2 - 1)^2, a = sqrt(8 Delta L/H_a): wells at +-a (curvature H_a),
    barrier Delta L at 0 (curvature H_b = -H_a/2). Returns (U, a, H_b). Status: exact (test
    potential for kramers_escape_time and the sandbox's 1-D escape runs)."""
    a = np.sqrt(8.0 * barrier / H_a)
    return (lambda x: barrier * ((np.asarray(x) / a) ** 2 - 1.0) ** 2), a, -H_a / 2.0


def exact_mfpt_1d(U, T, x_start, x_end, x_reflect, n=20001, mobility=1.0):
    """Exact mean first-passage time x_start -> x_end for dx = -mu U' dt + sqrt(2 mu T) dW.

    tau = 1/(mu T) int_{x_start}^{x_end} dy exp(U(y)/T) int_{x_reflect}^{y} exp(-U(z)/T) dz,
    reflecting at x_reflect < x_start < x_end (trapezoid rule on n points). Use it to check
    kramers_escape_time and a sandbox simulation's discretisation. Status: published (exact).
    """
    x = np.linspace(x_reflect, x_end, n)
    u = U(x) / T
    inner = cumulative_trapezoid(np.exp(-(u - u.min())), x, initial=0.0)
    mask = x >= x_start
    integrand = np.exp(u[mask] - u.min()) * inner[mask]
    return trapezoid(integrand, x[mask]) / (mobility * T)


def kramers_escape_steps(barrier, H_a, H_b, B, eta, rule_family="sgd", beta=0.0):
    """Mean escape time in STEPS for SGD-type rules (k = 1: sgd, heavy_ball, adai).

    tau_steps = 2 pi/(eta H1 sqrt(H_a |H_b|)) exp(2 B Delta L/(eta H1 H_a)): Kramers with the
    minimum's temperature T = eta H1 H_a/(2B) and mobility eta H1 per step (H1 = 1, or
    1/(1-beta) for torch heavy ball). Continuous-time approximation: valid for eta H1 H_a << 1
    and Delta L/T >~ 5; the noise covariance H/B is frozen at the minimum's value (Xie et
    al.'s s = 1 limit; at the saddle the true noise differs). Status: published form
    (Kramers; Xie, Sato & Sugiyama 2021), prefactor convention derived here.
    """
    k, h1, *_ = _family(rule_family, beta)
    if k != 1:
        raise ValueError("preconditioned rules have state-dependent mobility: use "
                         "predicted_log_escape_time for their exponent")
    T = effective_temperature(H_a, B, eta, rule_family, beta)
    return kramers_escape_time(barrier, T, H_a, H_b) / (eta * h1)

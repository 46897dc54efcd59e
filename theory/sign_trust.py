"""Effective (angular) step of Lion and of the trust-ratio rules LAMB/LARS on a scale-invariant
weight, without and with weight decay (docs/theory.md).

Notation as in :mod:`theory.homogeneity`: r = ||w||, Delta_t = angle(w_t, w_{t+1}) (rms), eta the
learning rate, lam the weight decay, d = dim(w). Noise-driven toy: g = P_perp(xi)/r.

Lion (Chen et al. 2023): u = sign(c), c = b1 m + (1 - b1) g, m <- b2 m + (1 - b2) g. Every
element is +-1, so ||u||^2 = d exactly (homogeneity 0, A^2 = d), and the norm recurrence is the
generic one (theory.homogeneity.norm_curve, theory.equilibrium) with Lion's own momentum factor
M_lion = 1 + 2 sum_j E<u_t, u_{t-j}>/d (lion_momentum_factor). Lion's RuleTraits (k = 0, EMA b1)
are AdamW's: they cannot tell the two apart, and AdamW's M = (1+b1)/(1-b1) = 19 is wrong for Lion
(M_lion ~ 46 at the default betas). The functions here pass the generic code an "equivalent EMA"
traits record with the same M (lion_equivalent_traits).

LAMB/LARS: the step is proportional to ||w|| (relative update eta for LAMB), so in the homogeneity
framework they behave like k = -1 (theory.homogeneity.rootfree_norm), not like k = 0 although the
update is of degree 0 in the gradient: without decay r grows geometrically and Delta stays at
arctan(eta) for ever; with decay r settles where the decay part of the direction balances the
momentum-driven growth, and Delta stays ~ eta (lamb_equilibrium; exactly 2 arcsin(eta/2) at a
stationary norm, by the law of cosines: lamb_angle_from_norm_ratio).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from .homogeneity import RuleTraits, angular_step_asymptote, angular_step_curve, norm_curve, rootfree_norm
from .toy import toy_update_size_sq

SOURCE_LION = "Chen et al., NeurIPS 2023 (Lion); Kosson et al., ICML 2024 (its rotation)"
SOURCE_LAMB = "You et al., ICLR 2020 (LAMB); You, Gitman & Ginsburg 2017 (LARS)"


# ---- Lion ---------------------------------------------------------------------------------------
def lion_interpolation_stats(beta1, beta2):
    """(V, A): stationary Var(c)/Var(g) = (1-b1)^2 + b1^2 (1-b2)/(1+b2) and the lag-1 correlation
    A of c; corr(c_t, c_{t-j}) = A b2^{j-1} for j >= 1.

    Derivation: m_t = (1-b2) sum_i b2^i g_{t-i} (uncorrelated g, per element variance s^2) has
    Var(m) = (1-b2) s^2/(1+b2); c_t = (1-b1) g_t + b1 m_{t-1};
    Cov(c_t, c_{t+j}) = b1 b2^{j-1} Cov(c_t, m_t) = b1 b2^{j-1} [(1-b1)(1-b2) + b1 b2 (1-b2)/(1+b2)] s^2.
    Status: exact (linear filter, stationary).
    """
    v = (1 - beta1) ** 2 + beta1 ** 2 * (1 - beta2) / (1 + beta2)
    cov1 = beta1 * ((1 - beta1) * (1 - beta2) + beta1 * beta2 * (1 - beta2) / (1 + beta2))
    return v, cov1 / v


def lion_sign_correlations(beta1, beta2, n_lags=None):
    """E[sign(c_t) sign(c_{t-j})] for j = 0..n_lags: 1 at j = 0, (2/pi) arcsin(A b2^{j-1}) after.

    The arcsine law holds for jointly Gaussian zero-mean c (per element, the toy's g is Gaussian:
    exact there; for real gradients an approximation). Status: derived (exact under the model).
    """
    _, a = lion_interpolation_stats(beta1, beta2)
    n = int(n_lags if n_lags is not None else math.ceil(40.0 / (1.0 - beta2)))
    j = np.arange(1, n + 1)
    return np.concatenate([[1.0], (2 / np.pi) * np.arcsin(np.clip(a * beta2 ** (j - 1), -1, 1))])


def lion_momentum_factor(beta1=0.9, beta2=0.99, exact=True):
    """M_lion: growth of r^2 per step / (eta^2 ||u||^2), ||u||^2 = d.

    exact=True: M = 1 + 2 sum_{j>=1} (2/pi) arcsin(A b2^{j-1}) (lion_sign_correlations).
    exact=False: the linearised (Bussgang) value behind Kosson et al.'s RV-Lion rotation,
    M = (2/pi)/V with V = (1-b1)^2 + b1^2 (1-b2)/(1+b2): sign(c) ~ sqrt(2/pi) c/sd(c), whose
    filter has DC gain 1 (every kick ends up displacing w by sqrt(2/pi) g/sd(c) in total).
    At (0.9, 0.99): exact 45.9, linearised 45.2 (Delta* differs by 0.7%).
    Derivation (exact form): as the AdamP lemma, r_{t+1}^2 = r_t^2 - 2 eta <w_t, u_t> + eta^2 d
    and <w_t, u_t> = -eta sum_{j>=1} <u_{t-j}, u_t> (past steps are what made w correlate with
    the current sign), E<u_{t-j}, u_t> = d E[sign sign]. Assumptions: noise-dominated tangential
    gradients, Delta << 1 - b2 (w turns little within the momentum memory), eta lam << 1 - b2.
    Status: derived here (exact=False reproduces Kosson et al.'s published expression).
    """
    if exact:
        c = lion_sign_correlations(beta1, beta2)
        return float(c[0] + 2 * c[1:].sum())
    v, _ = lion_interpolation_stats(beta1, beta2)
    return float((2 / np.pi) / v)


def lion_equivalent_traits(beta1=0.9, beta2=0.99, exact=True, decay="decoupled") -> RuleTraits:
    """A k = 0 EMA RuleTraits whose momentum_factor equals Lion's M (b_eq = (M-1)/(M+1)), so the
    generic theory (norm_curve, angular_step_curve, equilibrium) gives Lion's predictions."""
    m = lion_momentum_factor(beta1, beta2, exact)
    return RuleTraits(0, (m - 1) / (m + 1), "ema", decay=decay, name="lion(equivalent EMA)")


def lion_angular_step_asymptote(t, beta1=0.9, beta2=0.99, exact=True):
    """No decay: Delta_t -> 1/sqrt(M_lion t) (theory.homogeneity.angular_step_asymptote, k = 0).
    Status: derived. Regime: after ~3/(1-b2) steps, Delta << 1 - b2."""
    return angular_step_asymptote(t, lion_equivalent_traits(beta1, beta2, exact))


def lion_norm_curve(t, r0, eta, d, beta1=0.9, beta2=0.99, lam=0.0, exact=True):
    """rms r_t from r_0: r^2 relaxes to r*^2 = eta d M/(2 lam) (lam = 0: r_t^2 = r_0^2 + M eta^2 d t).
    theory.homogeneity.norm_curve with A^2 = d. Status: derived. Regime as lion_momentum_factor
    (the momentum's correlations build up over the first ~1/(1-b2) steps: slower growth there)."""
    return norm_curve(t, r0, eta, math.sqrt(d), lion_equivalent_traits(beta1, beta2, exact), lam)


def lion_angular_step_curve(t, r0, eta, d, beta1=0.9, beta2=0.99, lam=0.0, exact=True):
    """rms Delta_t = arctan(eta sqrt(d)/r_t) along lion_norm_curve. Status: derived."""
    return angular_step_curve(t, r0, eta, math.sqrt(d), lion_equivalent_traits(beta1, beta2, exact), lam)


def lion_equilibrium(eta, lam, d, beta1=0.9, beta2=0.99, exact=True):
    """(Delta*, r*) of Lion with decoupled decay: Delta* = sqrt(2 eta lam/M_lion),
    r* = sqrt(eta d M_lion/(2 lam)); time constant 1/(2 eta lam).
    exact=False gives Kosson et al.'s sqrt(pi/2) sqrt(2 eta lam) sqrt(V) (kosson_lion_rotation).
    Status: derived (Kosson's expression: published). Regime: as lion_momentum_factor,
    after ~3/(2 eta lam) steps."""
    m = lion_momentum_factor(beta1, beta2, exact)
    return math.sqrt(2 * eta * lam / m), math.sqrt(eta * d * m / (2 * lam))


def kosson_lion_rotation(eta, lam, beta1=0.9, beta2=0.99):
    """RV-Lion's target rotation sqrt(pi/2) sqrt(2 eta lam) sqrt((1-b1)^2 + b1^2 (1-b2)/(1+b2))
    (Kosson et al., official rotational_lion.py). Status: published."""
    v, _ = lion_interpolation_stats(beta1, beta2)
    return math.sqrt(math.pi / 2) * math.sqrt(2 * eta * lam) * math.sqrt(v)


# ---- LAMB ---------------------------------------------------------------------------------------
def lamb_direction_size_sq(d, beta1=0.9):
    """D^2 = E||m_hat/sqrt(v_hat)||^2, the scale-free size of Adam's direction in the toy:
    d (1-b1)/(1+b1) (theory.toy.toy_update_size_sq, k = 0). Status: derived (eps -> 0)."""
    return toy_update_size_sq(RuleTraits(0, beta1, "ema"), d)


def lamb_norm_curve_no_decay(t, r0, eta, beta1=0.9):
    """No decay: r_t = r_0 (1 + M eta^2)^{t/2}, M = (1+b1)/(1-b1): the step is eta r along a
    direction whose lag-j correlation is b1^j, so r^2 grows by the fixed factor 1 + M eta^2
    (theory.homogeneity.rootfree_norm with A = 1). Status: derived. Regime: eta^2 M << 1 - b1."""
    return rootfree_norm(t, r0, eta, 1.0, 0.0, (1 + beta1) / (1 - beta1))


def lamb_angle_from_norm_ratio(eta, rho):
    """Exact for LAMB (phi = identity), per tensor and step: the step has norm eta r_t, so the
    law of cosines gives cos Delta_t = (1 + rho^2 - eta^2)/(2 rho), rho = r_{t+1}/r_t.
    At a stationary norm (rho = 1): Delta = 2 arcsin(eta/2) ~ eta, whatever the decay.
    Status: exact (an identity of the rule)."""
    rho = np.asarray(rho, dtype=float)
    return np.arccos(np.clip((1 + rho * rho - eta * eta) / (2 * rho), -1.0, 1.0))


def lamb_angular_step_no_decay(eta, beta1=0.9):
    """No decay: rho^2 = 1 + M eta^2 on average, so Delta = lamb_angle_from_norm_ratio(eta,
    sqrt(1 + M eta^2)) = eta (1 - O(M^2 eta^2)): constant in t (it never decays, unlike Adam's
    1/sqrt(t)); ~ arctan(eta) (theory.homogeneity.rootfree_angular_step with A = 1).
    Status: derived."""
    m = (1 + beta1) / (1 - beta1)
    return float(lamb_angle_from_norm_ratio(eta, math.sqrt(1 + m * eta * eta)))


def _lamb_growth(x, eta, m):
    """r^2 multiplier per step minus 1 at x = lam r/D (see lamb_norm_step)."""
    q2 = 1 + x * x
    return eta * eta * (m + x * x) / q2 - 2 * eta * x / np.sqrt(q2)


def lamb_norm_step(r, eta, lam, d, beta1=0.9):
    """One step of the LAMB norm recurrence with decay (lam in the trust ratio, coupled):
    r^2 <- r^2 [1 + eta^2 (M + x^2)/(1 + x^2) - 2 eta x/sqrt(1 + x^2)], x = lam r/D.

    Derivation: the step is -eta r (dir + lam w)/q with q = ||dir + lam w|| = sqrt(D^2 + lam^2 r^2)
    (dir ~ tangential); its radial part shrinks r^2 by 2 eta lam r^2 r/q, its square adds eta^2 r^2,
    and the momentum correlations of dir add eta^2 r^2 D^2 (M - 1)/q^2 (as the AdamP lemma).
    Status: derived. Regime: eta^2 M << 1 - b1, noise-dominated, v tracking E[g^2].
    """
    m = (1 + beta1) / (1 - beta1)
    x = lam * r / math.sqrt(lamb_direction_size_sq(d, beta1))
    return r * np.sqrt(1 + _lamb_growth(x, eta, m))


@dataclass
class LambEquilibrium:
    angular_step: float  # Delta* = 2 arcsin(eta/2): the norm is stationary
    norm: float          # r* = x* D/lam
    x: float             # lam r*/D: weight of the decay term in the trust-ratio direction
    status: str = "derived"


def lamb_equilibrium(eta, lam, d, beta1=0.9) -> LambEquilibrium:
    """LAMB with decay: x* solves eta (M + x^2) = 2 x sqrt(1 + x^2) (x* ~ eta M/2 for small eta),
    r* = x* D/lam with D^2 = d (1-b1)/(1+b1), and Delta* = 2 arcsin(eta/2) ~ eta (the norm is
    stationary and every step has norm eta r: lamb_angle_from_norm_ratio): the decay sets the
    NORM, not the angular update, which stays ~ eta (the relative update size) whatever lam,
    unlike AdamW's sqrt(2 eta lam (1-b1)/(1+b1)). Status: derived (lamb_norm_step)."""
    m = (1 + beta1) / (1 - beta1)
    x = brentq(lambda z: _lamb_growth(z, eta, m), 1e-12, 1e6, xtol=1e-15, rtol=1e-13)
    dsz = math.sqrt(lamb_direction_size_sq(d, beta1))
    return LambEquilibrium(float(2 * math.asin(eta / 2)), float(x * dsz / lam), float(x))


def lamb_norm_curve(t, r0, eta, lam, d, beta1=0.9):
    """rms r_t of LAMB, any lam (iterates lamb_norm_step; lam = 0: lamb_norm_curve_no_decay).
    ``t``: an increasing array of integer steps. Status: derived."""
    t = np.asarray(t, dtype=int)
    if lam == 0:
        return lamb_norm_curve_no_decay(t, r0, eta, beta1)
    out, r, k = np.empty(len(t)), float(r0), 0
    for i, ti in enumerate(t):
        while k < ti:
            r, k = lamb_norm_step(r, eta, lam, d, beta1), k + 1
        out[i] = r
    return out


# ---- LARS ---------------------------------------------------------------------------------------
def lars_equilibrium(lr, trust, lam, momentum, grad_norm_unit):
    """LARS (heavy ball mu, lr inside the buffer): with a = lr trust and y = lam r^2/G
    (G = r ||g||, the scale-free gradient norm), the relative step of the gradient part is
    a/(1+y), of the decay part a y/(1+y); balance a/((1+y)(1-mu)) = 2 y, i.e.
    y*(1 + y*) = a/(2(1-mu)); r* = sqrt(y* G/lam), rms Delta* = a/((1+y*) sqrt(1-mu^2)).
    Without decay: r^2 grows by 1 + a^2/(1-mu)^2 per step, Delta = a/sqrt(1-mu^2) (constant).
    Returns (Delta*, r*). Status: derived (same recurrence as LAMB with a heavy-ball filter:
    growth H1^2 |step|^2, H1 = 1/(1-mu)). Regime: a/(1-mu) << 1, noise-dominated."""
    a = lr * trust
    y = (-1 + math.sqrt(1 + 2 * a / (1 - momentum))) / 2
    return a / ((1 + y) * math.sqrt(1 - momentum ** 2)), math.sqrt(y * grad_norm_unit / lam)

"""Stationary statistics of a rule on the noisy quadratic (used by invariance and escape).

Model: L(theta) = 1/2 sum_i H_i theta_i^2, minibatch gradient g = H theta + eps,
eps ~ N(0, C) with C = H/B by default (the Fisher/Hessian noise of a batch of B examples).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from .homogeneity import RuleTraits


def noisy_quadratic_grad_sq(H, B, theta_var, theta_mean=0.0, noise_var=None):
    """E[g_i^2] = H_i^2 (mean_i^2 + var_i) + C_i, C = H/B unless noise_var is given.

    Derivation: g = H theta + eps with eps independent of theta, zero mean. Status: exact.
    """
    H = np.asarray(H, dtype=float)
    C = H / B if noise_var is None else np.asarray(noise_var, dtype=float)
    return H ** 2 * (np.asarray(theta_mean, dtype=float) ** 2 + theta_var) + C


def _filter(traits: RuleTraits):
    b = traits.beta
    if traits.nesterov:
        raise NotImplementedError("Nesterov is not tabulated")
    tau = b if traits.momentum_kind == "ema" else (traits.dampening if b else 0.0)
    return b, 1.0 - tau


def _ar2_var(b, c, h, sigma2):
    """Stationary var of theta' = (1+b-c h) theta - b theta_- - c n, var(n) = sigma2 (inf if unstable)."""
    phi1 = 1 + b - c * h
    den = (1 - b) * ((1 + b) ** 2 - phi1 ** 2)
    if c * h <= 0 or den <= 0:
        return np.inf
    return (1 + b) * c * c * sigma2 / den


def noisy_quadratic_stationary_variance(H, B, eta, traits: RuleTraits, damping=0.0, eps=0.0,
                                        noise_var=None):
    """Stationary Var(theta_i) of a rule on the noisy quadratic (mean 0), per coordinate.

    Statement: with preconditioner P_i (fixed by v = E[g^2]): k = 1: P = 1; k = 0 (Adam):
    P = sqrt(E g^2) + eps; k = -1 (root-free): P = B E g^2 + damping; and momentum filter
    (beta, DC gain (1 - tau)), each coordinate is the AR(2)
        theta' = (1 + beta - c h) theta - beta theta_prev - c eps/P,  h = H/P, c = eta (1-tau),
    whose stationary variance is s = (1+beta) c^2 sigma^2 / ((1-beta)((1+beta)^2 - (1+beta-ch)^2)),
    sigma^2 = C/P^2 (no momentum: s = c sigma^2/(h (2 - c h)) = eta C/(P H (2 - eta H/P))).
    For k != 1, P depends on s through E g^2 = H^2 s + C: solved self-consistently (unique:
    the right side decreases in s).
    Closed forms: SGD s = eta/(B (2 - eta H)); root-free (beta = 0, damping 0): B H s = eta/2
    exactly, i.e. s = eta/(2 B H) (Gibbs at temperature eta/(2B)); Adam, small eta:
    s ~ eta/(2 sqrt(B H)).
    Assumptions: v equals E[g^2] exactly (beta2 -> 1: its fluctuations and its correlation
    with theta are neglected), bias corrections finished, stable step (else inf).
    Status: derived here (SGD/heavy ball: standard AR results, e.g. Mandt et al. 2017).
    """
    H = np.atleast_1d(np.asarray(H, dtype=float))
    C = H / B if noise_var is None else np.broadcast_to(np.asarray(noise_var, dtype=float), H.shape)
    b, gain = _filter(traits)
    c = eta * gain
    k = float(traits.homogeneity)
    out = np.empty_like(H)
    for i, (hi, ci) in enumerate(zip(H, C)):
        def precond(s):
            eg2 = hi * hi * s + ci
            if k == 1:
                return 1.0
            if k == 0:
                return np.sqrt(eg2) + eps
            if k == -1:
                return B * eg2 + damping
            raise ValueError("homogeneity must be 1, 0 or -1")

        def resid(s):
            p = precond(s)
            return s - _ar2_var(b, c, hi / p, ci / p ** 2)

        if k == 1:
            out[i] = _ar2_var(b, c, hi, ci)
            continue
        hi_s = max(ci, 1e-300) / max(hi * hi, 1e-300) + eta / max(hi, 1e-300)
        while not resid(hi_s) > 0:
            hi_s *= 4.0
        out[i] = brentq(resid, 0.0, hi_s, xtol=1e-15 * hi_s, rtol=1e-13)
    return out

"""Invariances (catalogue §6, docs/theory.md): predicted maps between runs, and root-free's Newton limit."""
from __future__ import annotations

import numpy as np

from .homogeneity import RuleTraits
from .noisy_quadratic import noisy_quadratic_grad_sq, noisy_quadratic_stationary_variance


def loss_scale_update_factor(c, homogeneity):
    """Factor by which the update changes when the loss is multiplied by c > 0: c^k.

    Statement: gradients scale by c, so a rule homogeneous of degree k in the gradient
    (with its state, e.g. Adam's v -> c^2 v, started from zero) takes steps c^k times as
    large: Adam (k = 0, eps -> 0) is invariant, trajectories identical; SGD (k = 1) scales
    by c; root-free (k = -1) by 1/c. Adam's invariance fails where eps is comparable to
    sqrt(v) (relative deviation ~ eps/(c sqrt(v))). Root-free's v_0 = 1/B start is not
    rescaled, so even its 1/c law holds only once beta2^t has forgotten the start.
    Status: published for Adam (Kingma & Ba 2015); generic form derived. Regime: exact.
    """
    return np.asarray(c, dtype=float) ** float(homogeneity)


def rootfree_reparam_map(D, theta=None, m=None, v=None, buf=None, grad=None, damping=0.0):
    """Predicted map between root-free runs on theta and on phi, theta = D phi (D > 0 diagonal).

    Statement: run root-free (rfadamw or rfrmsprop, damping 0) on F(phi) = L(D phi) from
    phi_0 = theta_0/D with state m_phi = D m, v_phi = D^2 v (v_0 -> D^2 v_0), heavy-ball buffer
    buf_phi = buf/D; then theta_t = D phi_t for every t, to round-off.
    Derivation: g_phi = D g_theta, so v_phi = D^2 v_theta and m_phi = D m_theta stay mapped by
    induction, and the step m_phi/(B v_phi) = D^{-1} m_theta/(B v_theta): multiplied by D it
    is theta's step. Decoupled decay phi(1 - eta wd) maps linearly; rfrmsprop's L2 added after
    preconditioning maps too (g_phi/(B v_phi) + wd phi = D^{-1}(g/(Bv) + wd theta)).
    Bias corrections are scalars and map trivially. A scalar damping lam breaks the map
    (it would have to be D^2 lam per element: returned as 'damping'); Adam's m/sqrt(v) is
    D-invariant in phi, so theta-steps get multiplied by D: not invariant.
    Returns a dict with the phi-space counterparts of the given theta-space quantities.
    With the default v_0 = 1/B in both runs see rootfree_init_mismatch.
    Status: derived here. Regime: exact with damping 0 and mapped initial state.
    """
    D = np.asarray(D, dtype=float)
    out = {"damping": D ** 2 * damping}
    if theta is not None:
        out["phi"] = np.asarray(theta, dtype=float) / D
    if m is not None:
        out["m"] = D * np.asarray(m, dtype=float)
    if v is not None:
        out["v"] = D ** 2 * np.asarray(v, dtype=float)
    if buf is not None:
        out["buf"] = np.asarray(buf, dtype=float) / D
    if grad is not None:
        out["grad"] = D * np.asarray(grad, dtype=float)
    return out


def rootfree_init_mismatch(D, beta2, t, batch_size):
    """v_phi,t - D^2 v_theta,t when both runs start from v_0 = 1/B: beta2^t (1 - D^2)/B.

    Derivation: v is linear in its start, v_t = beta2^t v_0 + (1 - beta2) sum beta2^{t-s} g_s^2;
    the gradient part maps exactly, the start does not. The step error relative to the
    mapped run is about this mismatch divided by D^2 v_theta,t, so the invariance holds once
    beta2^t |1 - D^2| / (B D^2 v_t) << 1 (t >> 1/(1 - beta2) for O(1) ratios; e.g. ~7000
    steps at beta2 = .999 for a 1e-3 relative error). Status: derived (exact).
    """
    D = np.asarray(D, dtype=float)
    return beta2 ** np.asarray(t, dtype=float) * (1.0 - D ** 2) / batch_size


def noisy_quadratic_newton_step(H_diag, B, eta, traits: RuleTraits | None = None, damping=0.0,
                                theta_mean=0.0, noise_var=None):
    """Predicted stationary preconditioner B v of root-free on the noisy quadratic vs diag(H).

    Statement: with g = H theta + eps, Cov eps = C = H/B,
        B E[g^2] = H + B H^2 (theta_mean^2 + s),
    s the stationary Var(theta) (noisy_quadratic_stationary_variance). For root-free without
    momentum and damping, B H s = eta/2 exactly, so B v -> H (1 + eta/2) at the minimum: a
    diagonal Newton step scaled by 1/(1 + eta/2); with heavy-ball momentum beta the excess is
    ~ eta/(2(1 - beta)). B v ~ diag H holds when B H (theta_mean^2 + s) << 1: at the
    stationary state for eta << 1 (resp. eta << 1 - beta), but not during the approach, where
    the signal term B H^2 theta^2 dominates (then B v ~ B (H theta)^2, not a Newton step), nor
    when C differs from H/B (then B v -> B C: the Fisher, not the Hessian).
    Returns a dict: 'Bv' (predicted B v), 'ratio' (B v / H), 'var' (s), 'excess' (B H
    (mean^2 + s)), 'step_gain' (H/(B v + damping): the Newton-step fraction taken per eta).
    Assumptions: v = E[g^2] (beta2 -> 1), damping << B v. Status: paper's motivation (Lin et
    al. ICML 2024); the exact excess eta/2 is derived here.
    """
    traits = traits or RuleTraits(-1)
    H = np.atleast_1d(np.asarray(H_diag, dtype=float))
    s = noisy_quadratic_stationary_variance(H, B, eta, traits, damping=damping, noise_var=noise_var)
    bv = B * noisy_quadratic_grad_sq(H, B, s, theta_mean, noise_var)
    return {"Bv": bv, "ratio": bv / H, "var": s,
            "excess": B * H * (np.asarray(theta_mean, dtype=float) ** 2 + s),
            "step_gain": H / (bv + damping)}

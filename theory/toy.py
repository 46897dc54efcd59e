"""The noise-driven toy: g = P_perp(xi)/r, xi ~ N(0, I_d) (tangential, scaled like a gradient).

Scale-free sizes that the generic predictions take as inputs when the sandbox simulates the
toy instead of measuring them.
"""
from __future__ import annotations

import numpy as np

from .homogeneity import RuleTraits, momentum_filter_sums


def toy_grad_norm_sq_unit(d):
    """Scale-free E||g||^2 r^2 of the toy: E||P_perp xi||^2 = d - 1. Status: exact."""
    return float(d) - 1.0


def toy_raw_update_size_sq(traits: RuleTraits, d, batch_size=1):
    """N^2 = E||P(g)||^2 r^{2k}: the preconditioned gradient before momentum, scale-free.

    k = 1: d - 1 (no preconditioner). k = 0 (Adam, eps -> 0, v = E[g^2] per element):
    sum_i E[g_i^2]/v_i = d exactly. k = -1 (root-free, damping 0, v = E[g^2] per element):
    E[g_i^2]/(B E[g_i^2])^2 = r^2/(B^2 (1 - w_i^2)), summed over a uniformly random
    direction: d (d-1)/((d-3) B^2) ~ (d+2)/B^2.
    Assumptions: v has converged to E[g^2] (beta2 -> 1, and for k = -1 the radius changes
    slowly on the 1/(1-beta2) horizon, which fails once r grows geometrically: measure A
    then). Status: derived (exact under the assumptions).
    """
    k = float(traits.homogeneity)
    if k == 1:
        return float(d) - 1.0
    if k == 0:
        return float(d)
    if k == -1:
        return d * (d - 1.0) / ((d - 3.0) * batch_size ** 2)
    raise ValueError("toy sizes are tabulated for k in {1, 0, -1}")


def toy_update_size_sq(traits: RuleTraits, d, angular_step=0.0, batch_size=1):
    """A^2 = E||u||^2 r^{2k}: stationary scale-free size of the APPLIED update in the toy.

    Statement: A^2 = N^2 H2 (unprojected; H2 = sum_j h_j^2 of the momentum filter, e.g.
    1/(1-beta^2) heavy ball, (1-beta)/(1+beta) EMA). Projected update q = P_perp(p):
      buffer not projected (AdamP, timm SGDP): A^2 = N^2 H2 / (1 + beta^2 D^2/(1-beta)^2),
      buffer projected in place (official SGDP): A^2 = (1-tau)^2 N^2 / (1 - beta^2 (1 - D^2)),
    with D the rms angular step (equilibrium: sqrt(2 eta lam_eff); no decay: D -> 0).
    Derivation of the projection correction: the buffer lags the rotating weight; its radial
    part rho_t = <w_t/r, p_t> obeys rho_{t+1} = beta (rho_t - eta ||q_t||^2 / r), so
    rho = -(beta/(1-beta)) eta ||q||^2/r and ||p||^2 = ||q||^2 (1 + beta^2 D^2/(1-beta)^2).
    Not negligible: at beta = .9, D = .045 the projection removes 14% of ||p||^2 (AdamP's
    equilibrium norm drops 7%). With the buffer projected each step only beta^2 D^2 ||q||^2
    is lost per step: the factor (1 - beta^2)/(1 - beta^2 (1 - D^2)) (0.9915 there).
    Status: derived here (checked against numpy simulations of SGDP with and without buffer
    projection to < 0.3% in r*, and of AdamP). Nesterov + projection: not covered (returns
    the unprojected value).
    """
    n2 = toy_raw_update_size_sq(traits, d, batch_size)
    h1, h2 = momentum_filter_sums(traits)
    b = traits.beta
    if not traits.projected or b == 0.0 or traits.nesterov:
        return n2 * h2
    D2 = float(angular_step) ** 2
    if traits.project_buffer:
        tau = b if traits.momentum_kind == "ema" else float(traits.dampening)
        return (1 - tau) ** 2 * n2 / (1 - b * b * (1 - D2))
    return n2 * h2 / (1 + b * b * D2 / (1 - b) ** 2)


def toy_update_size(traits: RuleTraits, d, angular_step=0.0, batch_size=1):
    """A = sqrt(toy_update_size_sq(...)), the scale-free rms applied-update size (derived)."""
    return np.sqrt(toy_update_size_sq(traits, d, angular_step, batch_size))

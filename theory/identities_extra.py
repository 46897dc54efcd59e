"""Weight decay as an exponential learning rate for DECOUPLED decay (complements identities.py,
which covers Li & Arora's coupled L2 form). Pure numpy.

Written by the verify/toys engineer (issue 3, part A) because the SGDP-type decoupled case had no
theory function; the coupled case stays in ``theory.identities`` (``exp_lr_schedule``).
"""
from __future__ import annotations

import numpy as np


def exp_lr_decoupled(eta, lam_eff, steps, momentum=0.0):
    """Equivalent no-decay run of heavy ball with DECOUPLED decay on a scale-invariant loss.

    Statement. Run A (decoupled decay, heavy ball, optional projection of the direction):
        b_t = gamma b_{t-1} + g_t (b_{-1} = 0),  q_t = P_t(b_t),  w_{t+1} = a w_t - eta q_t,
    with a = 1 - eta lam_eff (e.g. SGDP: lam_eff = lam wd_ratio/(1 - gamma) where the projection
    fires), and P_t either the identity or the radial projection at w_t (written back into b_t
    or not). Run B has no decay, momentum gamma' = gamma a, zero initial buffer and the
    per-step learning rate eta_t = eta a^{-2t-1}. On any sequence of scale-invariant losses
    (same minibatches / noise), x_t = a^{-t} w_t and b~_t = a^t b_t for all t: the directions
    coincide exactly.
    Derivation: induction with w_t = a^t x_t. Scale invariance gives g_t = grad L_t(a^t x_t)
    = a^{-t} g~_t; then b_t = gamma b_{t-1} + g_t = a^{-t}(gamma a b~_{t-1} + g~_t) = a^{-t} b~_t;
    the projection is homogeneous of degree 0 in w and 1 in b, so q_t = a^{-t} q~_t (and a
    write-back into the buffer maps the same way); finally
    w_{t+1} = a^{t+1} x_t - eta a^{-t} q~_t = a^{t+1}(x_t - eta a^{-2t-1} q~_t).
    Unlike the coupled case (Li & Arora, ICLR 2020: alpha from x^2 - (1 + gamma - eta lam) x +
    gamma = 0, momentum unchanged, radial initial buffer), decoupled decay needs no initial
    buffer but changes the momentum coefficient to gamma a; with gamma = 0 both reduce to
    eta_t = eta (1 - eta lam)^{-2t-1}.
    Assumptions: exact scale invariance of every loss L_t; the projection's eps = 0 (its
    w/(||w|| + eps) is otherwise not exactly scale-equivariant). Status: derived here (a
    variant of Li & Arora's theorem). Regime: exact (float64 round-off).
    Returns a dict: 'a', 'schedule' (eta_t, t = 0..steps-1), 'momentum' (gamma a),
    'norm_ratio' (||x_t||/||w_t|| = a^{-t}, t = 0..steps).
    """
    a = 1.0 - float(eta) * float(lam_eff)
    if not 0.0 < a <= 1.0:
        raise ValueError(f"need 0 < 1 - eta*lam_eff <= 1; got eta={eta}, lam_eff={lam_eff}")
    t = np.arange(int(steps), dtype=float)
    return {"a": a, "schedule": eta * a ** (-2.0 * t - 1.0), "momentum": float(momentum) * a,
            "norm_ratio": a ** (-np.arange(int(steps) + 1, dtype=float))}

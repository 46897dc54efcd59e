"""Escape exponent with position-dependent gradient noise (an extra to :mod:`theory.escape`).

:mod:`theory.escape` takes the noise covariance at the minimum, C = H_a/B, along the whole
escape path. A minibatch-like noise follows the local Hessian instead, C(x) ~ |U''(x)|/B (Xie,
Sato & Sugiyama, ICLR 2021 use H_a near the minimum and |H_b| near the saddle). This module gives
the Arrhenius exponent for such a noise.

Statement. For the 1-D Ito diffusion dx = -mu U'(x) dt + sqrt(2 mu T(x)) dW with a
position-dependent temperature T(x), the zero-flux stationary density is
    p(x) ~ exp(-int^x U'(y)/T(y) dy) / T(x)
(Gardiner, Handbook of Stochastic Methods, 3rd ed., section 5.2.2), so the exponent of the escape
time over the barrier is
    E = int_{x_a}^{x_b} U'(x)/T(x) dx
(the 1/T(x) factor only changes the prefactor). With T(x) = T_a C(x)/C_a (a rule whose
preconditioner is fixed by the well's second moment, so only the noise varies) the exponent is
E = (Delta L/T_a) * R with the shape factor
    R = (C_a/Delta L) int_{x_a}^{x_b} U'(x)/C(x) dx,
R = 1 for a constant noise. For the quartic well U = Delta L((x/a)^2 - 1)^2 (theory.escape.
quartic_double_well) and C(x) = max(|U''(x)|, floor*H_a), R depends only on the floor (the
substitution y = x/a removes a, Delta L and H_a): R(1) = 1, R(1/2) ~ 1.95, R(1/4) ~ 3.18.

Assumptions: overdamped, leading order in T/Delta L (corrections O(T/Delta L)), preconditioner
quasi-static. Status: derived here (a standard result of diffusion theory applied to this noise).
Consequence (exact): R does not depend on the sharpness k, so the laws in k, B and eta of
theory.escape are unchanged; only the constant in front changes.
"""
from __future__ import annotations

import numpy as np
from scipy.integrate import quad


def arrhenius_exponent(dU, temperature, x_a: float, x_b: float, breakpoints=()) -> float:
    """E = int_{x_a}^{x_b} U'(x)/T(x) dx for callables dU and temperature (module docstring)."""
    pts = [p for p in breakpoints if x_a < p < x_b] or None
    value, _ = quad(lambda x: dU(x) / temperature(x), x_a, x_b, points=pts, limit=200)
    return float(value)


def quartic_local_noise_factor(floor: float) -> float:
    """R for the quartic double well with noise C(x) = max(|U''(x)|, floor*H_a)/B against
    C = H_a/B (module docstring); floor in (0, 1]. In the unit y = x/a (well at y = -1, barrier
    at 0): U' = (4 Delta L/a) y(y^2 - 1), U'' = (H_a/2)(3y^2 - 1), so
    R = 8 int_{-1}^{0} y(y^2 - 1)/max(|3y^2 - 1|, 2 floor) dy."""
    if not 0 < floor <= 1:
        raise ValueError(f"floor={floor!r}: must be in (0, 1] (a fraction of H_a)")
    inner = arrhenius_exponent(lambda y: y * (y * y - 1.0),
                               lambda y: max(abs(3.0 * y * y - 1.0), 2.0 * floor), -1.0, 0.0,
                               breakpoints=(-1.0 / np.sqrt(3.0),))
    return 8.0 * inner

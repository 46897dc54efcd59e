r"""bfloat16 predictions (pure numpy): what rounding does to a step and to an EMA (notebook 05).

bfloat16 keeps 8 significant bits (7 stored + the implicit one) and float32's exponent range, and
rounds to nearest, ties to even (RNE). For x in [2^e, 2^{e+1}) the spacing is ulp(x) = 2^{e−7},
so the relative half-spacing ulp(x)/(2|x|) lies in (2^−9, 2^−8]: a change smaller than 2^−9 |x|
(≈ 0.195%) is always rounded away, one larger than 2^−8 |x| (≈ 0.39%) never is.

Two consequences for the optimizers (status: derived here from the rounding rule alone):

1. **Weight rounding** (:func:`bf16_step_retention`): on a scale-invariant weight the per-element
   relative update is about the angular step Δ (times a ratio of Gaussians), so steps with
   Δ ≲ 2^−8 are partly lost. The retained fraction of the rms angle, ρ(Δ), is computed by
   Monte Carlo for a uniformly random direction and an isotropic tangential step.
2. **State rounding** (:func:`ema_can_decrease`, :func:`bf16_ema_trace`): an EMA
   v ← βv + (1−β)g² stored in bf16 moves v down by at most (1−β)v. If 1−β < 2^−9 that is below
   half a spacing at every v, so **v can never decrease** (exact under RNE, whether the update
   is rounded once or after each of its two operations); it still moves up, by a whole spacing,
   whenever (1−β)(g² − v) exceeds half a spacing. Adam's and root-free's default β2 = 0.999
   (1−β2 = 0.001 < 2^−9 ≈ 0.00195) fall in this case: v ratchets upward and over-estimates
   E[g²], which shrinks the update (by 1/v for root-free, 1/sqrt(v) for Adam).
Both ignore everything else (momentum buffers in bf16, the gradient's own rounding), which the
notebook measures.
"""
from __future__ import annotations

import numpy as np

MANTISSA_BITS = 8  # significant bits of bfloat16, the implicit leading one included
HALF_SPACING_MIN = 2.0 ** -(MANTISSA_BITS + 1)  # 2^-9: smallest relative half-spacing
HALF_SPACING_MAX = 2.0 ** -MANTISSA_BITS        # 2^-8: largest relative half-spacing


def round_bf16(x) -> np.ndarray:
    """x rounded to bfloat16 (nearest, ties to even), returned as float32.

    Emulated on the float32 bit pattern: add 0x7FFF plus the lowest kept bit, clear the low 16
    bits (float32 → bfloat16 keeps the sign, the 8-bit exponent and the top 7 mantissa bits).
    Exact for finite float32 inputs (x is first rounded to float32). Status: exact.
    """
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    bits = x.view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32).reshape(x.shape)


def ema_can_decrease(beta: float) -> str:
    """Can an EMA x ← βx + (1−β)y stored in bf16 ever move x DOWN?

    'never' when 1−β < 2^−9 (the largest possible decrement (1−β)x, at y = 0, is below half a
    spacing at every x), 'sometimes' when 2^−9 ≤ 1−β < 2^−8 (it depends on where x sits in its
    binade), 'yes' otherwise. Status: exact (RNE).
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta={beta!r}: an EMA coefficient must lie in [0, 1)")
    step = 1.0 - beta
    if step < HALF_SPACING_MIN:
        return "never"
    return "sometimes" if step < HALF_SPACING_MAX else "yes"


def bf16_ema_trace(beta: float, steps: int, elements: int = 4096, v0: float = 1.0,
                   g_scale=1.0, seed: int = 0, two_roundings: bool = True,
                   bf16: bool = True) -> np.ndarray:
    """mean_i v_{t,i} / g_scale_t² for t = 1..steps of an EMA v ← βv + (1−β)g², g_t ~ N(0, g_scale_t²).

    ``g_scale``: a number, or one per step (e.g. 1/r_t for a weight whose norm grows, where the
    true E[g²] falls and a bf16 v cannot follow it down). With ``bf16`` the update is computed in
    float32 and rounded to bf16 after each of its two operations (``v.mul_(β).addcmul_(g, g,
    value=1−β)``, the sandbox's root-free and Adam stages) or once (``two_roundings=False``), and
    g itself is a bf16 number; ``bf16=False`` runs the same EMA in float32 (the reference with the
    same lag, for ratios). In float32 at a fixed scale the trace stays near 1 (v0 = E[g²]); in
    bf16 with 1−β < 2^−9 the mean of v never decreases (:func:`ema_can_decrease`).
    Status: derived (Monte Carlo of the rounding model; iid Gaussian g).
    """
    rng = np.random.default_rng(seed)
    scale = np.broadcast_to(np.asarray(g_scale, dtype=np.float64), (steps,))
    rnd = round_bf16 if bf16 else (lambda x: np.asarray(x, dtype=np.float32))
    v = rnd(np.full(elements, v0, dtype=np.float32))
    out = np.empty(steps)
    b, c = np.float32(beta), np.float32(1.0 - beta)
    for t in range(steps):
        g = rnd(np.float32(scale[t]) * rng.standard_normal(elements).astype(np.float32))
        v = rnd(rnd(v * b) + c * g * g) if two_roundings else rnd(v * b + c * g * g)
        out[t] = float(v.mean()) / scale[t] ** 2
    return out


def bf16_step_retention(delta, d: int = 64, samples: int = 2000, seed: int = 0) -> np.ndarray:
    """ρ(Δ): rms angle actually taken / nominal angle Δ when w and w' are stored in bf16.

    Model: w uniformly random in direction (stored in bf16), a tangential step u ⟂ w with
    ‖u‖ = Δ‖w‖ in a uniformly random tangential direction, w' = bf16(w + u); the realised angle is
    angle(w, w'). ρ → 1 for Δ ≫ 2^−8 (every element moves), and falls for Δ ≲ 2^−8 as small
    relative changes are rounded away; elements with small |w_i| still move (their relative
    change is large), so ρ decays slowly rather than dropping to 0. Rounding also adds a
    random part to large steps (ρ slightly above 1 near Δ ≈ 2^−8). Status: derived (Monte
    Carlo, ``samples`` weights per Δ; standard error ≈ 1/sqrt(samples) relative).
    """
    deltas = np.atleast_1d(np.asarray(delta, dtype=float))
    rng = np.random.default_rng(seed)
    w = round_bf16(rng.standard_normal((samples, d))).astype(np.float64)
    r = np.linalg.norm(w, axis=1, keepdims=True)
    w_hat = w / r
    z = rng.standard_normal((samples, d))
    z -= w_hat * (z * w_hat).sum(1, keepdims=True)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    out = np.empty(deltas.shape)
    for i, dl in enumerate(deltas):
        step = round_bf16(w + dl * r * z).astype(np.float64) - w
        radial = (step * w_hat).sum(1)
        tang = np.linalg.norm(step - w_hat * radial[:, None], axis=1)
        angle = np.arctan2(tang, r[:, 0] + radial)
        out[i] = np.sqrt(np.mean(angle ** 2)) / dl if dl > 0 else np.nan
    return out

r"""Fused CPU kernel of the Adam family: adamw / adamp (decoupled) and adam with coupled L2.

Mirrors, per element, the chains of :mod:`sandbox.optim.rules`

- decoupled (``adamw``, ``adamp``): ``scale_by_adam → [radial_projection] → add_decayed_weights →
  scale_by_lr``;
- coupled (``adam``): ``add_decayed_weights → scale_by_adam → [radial_projection] → scale_by_lr``.

One call: the step counters (:func:`_steps`), the projection's row sums and verdicts
(:mod:`.projection_cpu`), then one pass row by row (moments, direction, projection, decay,
parameter); rows where the layer view fired get a second pass that recomputes d from the stored
moments, once ⟨ŵ, d⟩ of their whole replica is known.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import numba_setup
from .layout_cpu import (array_at, check, counter_at, layout, like_array, mark_written, pointers,
                         state_lists)
from .projection_cpu import LAYER, apply_projected, dot, layer_sums, prepare

# entries of the hyperparameter vector (in the parameters' dtype)
SGN, WDC, B1, CB1, B2, CB2, EPS, AN, CN, NLR, WD_PLAIN, WD_FIRED = range(12)
_OPTS = dict(cache=True, error_model="numpy")


@njit(**_OPTS)
def _steps(step_ptr, beta1, beta2, consts):
    """t ← t + 1 in each float32 ``step``; consts[k] = (1/(1 − β1^t), 1/√(1 − β2^t))."""
    for k in range(len(step_ptr)):
        s = counter_at(step_ptr[k])
        s[0] += 1
        t = np.float64(s[0])
        consts[k, 0] = 1.0 / (1.0 - beta1**t)
        consts[k, 1] = 1.0 / math.sqrt(1.0 - beta2**t)


@njit(**_OPTS)
def _moments(p, g, m, v, out, hp, rbc1, rsbc2):
    """Update m, v (views of one row) and write d into out[:len(p)]."""
    sgn, wdc, b1, cb1, b2, cb2 = hp[SGN], hp[WDC], hp[B1], hp[CB1], hp[B2], hp[CB2]
    eps, an, cn = hp[EPS], hp[AN], hp[CN]
    for i in range(len(p)):
        u = sgn * g[i] + wdc * p[i]
        mi = m[i] * b1 + cb1 * u
        vi = v[i] * b2 + (cb2 * u) * u
        m[i] = mi
        v[i] = vi
        out[i] = (an * mi + cn * u) * rbc1 / (np.sqrt(vi) * rsbc2 + eps)


@njit(**_OPTS)
def _direction(p, g, m, v, out, hp, rbc1, rsbc2):
    """d from the stored (already updated) m, v into out[:n]; nothing else is written. Without
    Nesterov d does not depend on u, and g is not read (a stream less in the second pass)."""
    sgn, wdc, eps, an, cn = hp[SGN], hp[WDC], hp[EPS], hp[AN], hp[CN]
    if cn == 0:
        for i in range(len(p)):
            out[i] = m[i] * rbc1 / (np.sqrt(v[i]) * rsbc2 + eps)
    else:
        for i in range(len(p)):
            u = sgn * g[i] + wdc * p[i]
            out[i] = (an * m[i] + cn * u) * rbc1 / (np.sqrt(v[i]) * rsbc2 + eps)


@njit(**_OPTS)
def _fused(p, g, m, v, hp, rbc1, rsbc2):
    """Moments, d and θ ← θ + (d + λθ)(−lr) in one loop (rows that are not projected)."""
    sgn, wdc, b1, cb1, b2, cb2 = hp[SGN], hp[WDC], hp[B1], hp[CB1], hp[B2], hp[CB2]
    eps, an, cn, nlr, wds = hp[EPS], hp[AN], hp[CN], hp[NLR], hp[WD_PLAIN]
    for i in range(len(p)):
        w = p[i]
        u = sgn * g[i] + wdc * w
        mi = m[i] * b1 + cb1 * u
        vi = v[i] * b2 + (cb2 * u) * u
        m[i] = mi
        v[i] = vi
        d = (an * mi + cn * u) * rbc1 / (np.sqrt(vi) * rsbc2 + eps)
        p[i] = w + (d + wds * w) * nlr


@njit(parallel=True, **_OPTS)
def _main(ptrs, tasks, chunks, hp, consts, row_mode, row_inv, row_s, max_row, like, second):
    """The pass over ``tasks``. First pass (``second`` False): every task; rows where the layer
    view fired only update m, v and store ⟨w, d⟩ in ``row_s``. Second pass: those rows again,
    d recomputed from the stored moments, projected with ⟨ŵ, d⟩ of the whole replica."""
    for c in prange(len(chunks) - 1):
        buf = np.empty(max_row, like.dtype)
        scal = np.empty(4, like.dtype)
        for ti in range(chunks[c], chunks[c + 1]):
            k, off, n, row = tasks[ti, 0], tasks[ti, 1], tasks[ti, 2], tasks[ti, 3]
            p = array_at(ptrs[0, k], off, n, like)
            g = array_at(ptrs[1, k], off, n, like)
            m = array_at(ptrs[2, k], off, n, like)
            v = array_at(ptrs[3, k], off, n, like)
            if second:
                _direction(p, g, m, v, buf, hp, consts[k, 0], consts[k, 1])
                scal[0], scal[1], scal[2], scal[3] = row_inv[row], row_s[row], hp[WD_FIRED], hp[NLR]
                apply_projected(p, buf, scal, p, False)
                continue
            if row < 0 or row_mode[row] == 0:
                _fused(p, g, m, v, hp, consts[k, 0], consts[k, 1])
                continue
            _moments(p, g, m, v, buf, hp, consts[k, 0], consts[k, 1])
            q = dot(p, buf)
            if row_mode[row] == LAYER:
                row_s[row] = q  # θ waits for the replica's whole ⟨w, d⟩ (second pass)
                continue
            inv = row_inv[row]
            scal[0], scal[1], scal[2], scal[3] = inv, inv * q, hp[WD_FIRED], hp[NLR]
            apply_projected(p, buf, scal, p, False)


_STATE = (("step", 0.0, None), ("exp_avg", 0.0, None), ("exp_avg_sq", 0.0, None))
_NO_ROWS = (np.zeros(0, np.int8), np.zeros(0), np.zeros(0))


def step(params, grads, states, *, lr, beta1, beta2, eps, weight_decay, decoupled, nesterov,
         project, delta, wd_ratio, replica_dims, maximize):
    r"""One Adam-family step over ``params`` (in place); returns the projection codes per parameter.

    ``scale_by_adam`` (stage docstring), with u = g (decoupled) or u = g + λθ (coupled L2,
    ``add_decayed_weights`` first), g replaced by −g when ``maximize``:

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) u_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) u_t^2,\\
        d_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}

    (Nesterov: numerator β1 m_t + (1−β1) u_t), computed as numer·(1/bc1) / (√v·(1/√bc2) + eps):
    one division per element where the stage's ``numer / denom / bc1`` takes three (the
    per-tensor reciprocals change the rounding by an ulp; the divisions, not memory, bounded the
    projected rows' pass).
    ``radial_projection`` (when ``project``; eps shared, see :mod:`.projection_cpu`):
    d ← d − ŵ⟨ŵ, d⟩ on the view that fired, factor = wd_ratio there (else 1).
    ``add_decayed_weights`` after it (decoupled only) and ``scale_by_lr``:
    θ ← θ + (d + λ·factor·θ)·(−lr). State: ``step`` (0-d float32), ``exp_avg``, ``exp_avg_sq``.

    Returns per parameter a uint8 tensor of its replica shape: 0 none, 1 channel view, 2 layer
    view (shared all-zero tensors for parameters that are never projected: read-only).
    """
    if not params:
        return []
    steps, ms, vs = state_lists(params, states, _STATE)
    check(params, grads, ms, vs)
    like = like_array(params[0])
    lay = layout(params, replica_dims, project, numba_setup.threads())
    ptrs = pointers(params, grads, ms, vs, steps)
    consts = np.empty((len(params), 2), dtype=like.dtype)
    _steps(ptrs[4], float(beta1), float(beta2), consts)
    wd = float(weight_decay)
    hp = np.array([-1.0 if maximize else 1.0, 0.0 if decoupled else wd, beta1, 1.0 - beta1, beta2,
                   1.0 - beta2, eps, beta1 if nesterov else 1.0, 1.0 - beta1 if nesterov else 0.0,
                   -lr, wd if decoupled else 0.0, wd * wd_ratio if decoupled else 0.0],
                  dtype=like.dtype)
    if not (project and lay.n_reps):
        numba_setup.launch(_main, ptrs, lay.tasks, lay.chunks, hp, consts, *_NO_ROWS,
                           0, like, False)
        mark_written(params)
        return lay.zero_codes()
    codes, flat, row_mode, row_inv, row_s = prepare(lay, ptrs, like, delta, eps, numba_setup.launch)
    numba_setup.launch(_main, ptrs, lay.tasks, lay.chunks, hp, consts, row_mode,
                       row_inv, row_s, lay.max_row, like, False)
    if (codes == LAYER).any():
        layer_sums(lay.reps, codes, row_inv, row_s)
        tasks, chunks = lay.select(row_mode, LAYER)
        numba_setup.launch(_main, ptrs, tasks, chunks, hp, consts, row_mode, row_inv, row_s,
                           lay.max_row, like, True)
    mark_written(params)
    return lay.codes(flat)


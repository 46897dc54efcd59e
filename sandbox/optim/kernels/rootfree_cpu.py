r"""Fused CPU kernels of the root-free rules (Lin et al., ICML 2024), without projection (the
projected forms run the stages).

- ``rfadamw``: ``scale_by_rootfree_adam → add_decayed_weights → scale_by_lr``;
- ``rfrmsprop``: ``precondition_rootfree → add_decayed_weights → heavy_ball(key=
  "momentum_buffer", first="zeros") → scale_by_lr``.

Both are one elementwise pass over blocks of every tensor (:mod:`.layout_cpu`).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import numba_setup
from .layout_cpu import (array_at, check, counter_at, layout, like_array, mark_written, pointers,
                         state_lists)

SGN, B1, CB1, B2, CB2, EPS, NLR, WD = range(8)  # rfadamw's hyperparameter vector
R_SGN, R_KEEP, R_RATE, R_B, R_EPS, R_WD, R_MU, R_NLR = range(8)  # rfrmsprop's
_OPTS = dict(cache=True, error_model="numpy")


@njit(**_OPTS)
def _rfadamw_piece(p, g, m, v, hp, rc1, bc2):
    sgn, b1, cb1, b2, cb2 = hp[SGN], hp[B1], hp[CB1], hp[B2], hp[CB2]
    eps, nlr, wd = hp[EPS], hp[NLR], hp[WD]
    for i in range(len(p)):
        w = p[i]
        u = sgn * g[i]
        mi = m[i] * b1 + cb1 * u
        vi = v[i] * b2 + (cb2 * u) * u
        m[i] = mi
        v[i] = vi
        p[i] = w + ((mi * rc1) / (bc2 * vi + eps) + wd * w) * nlr


@njit(parallel=True, **_OPTS)
def _rfadamw(ptrs, tasks, chunks, hp, beta1, beta2, batch, bias_correction, like):
    n = ptrs.shape[1]
    consts = np.empty((n, 2), like.dtype)  # (1/c1, B/c2) per parameter
    for k in range(n):
        s = counter_at(ptrs[4, k])
        s[0] += 1
        t = np.float64(s[0])
        c1, c2 = (1.0 - beta1**t, 1.0 - beta2**t) if bias_correction else (1.0, 1.0)
        consts[k, 0] = 1.0 / c1
        consts[k, 1] = batch / c2
    for c in prange(len(chunks) - 1):
        for ti in range(chunks[c], chunks[c + 1]):
            k, off, size = tasks[ti, 0], tasks[ti, 1], tasks[ti, 2]
            p, g = array_at(ptrs[0, k], off, size, like), array_at(ptrs[1, k], off, size, like)
            m, v = array_at(ptrs[2, k], off, size, like), array_at(ptrs[3, k], off, size, like)
            _rfadamw_piece(p, g, m, v, hp, consts[k, 0], consts[k, 1])


def rfadamw_step(params, grads, states, *, lr, beta1, beta2, eps, weight_decay, batch_size,
                 bias_correction, maximize):
    r"""One root-free AdamW step (in place). ``scale_by_rootfree_adam`` (stage docstring), u = g
    (−g when ``maximize``):

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) u_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) u_t^2,
        \quad v_0 = 1/B,\\
        d_t = \frac{m_t/c_1}{B\, v_t / c_2 + \lambda}

    (computed as ``(m·(1/c1)) / ((B/c2)·v + eps)``), ``c_1 = 1−β1^t, c_2 = 1−β2^t`` when
    ``bias_correction``, else 1; then ``add_decayed_weights`` (decoupled) and ``scale_by_lr``:
    θ ← θ + (d + wd·θ)·(−lr). State: ``step``, ``exp_avg``, ``exp_avg_sq`` (filled 1/B).
    """
    if not params:
        return None
    steps, ms, vs = state_lists(params, states, (("step", 0.0, None), ("exp_avg", 0.0, None),
                                                 ("exp_avg_sq", 1.0 / batch_size, None)))
    check(params, grads, ms, vs)
    like = like_array(params[0])
    lay = layout(params, 0, False, numba_setup.threads())
    hp = np.array([-1.0 if maximize else 1.0, beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps, -lr,
                   weight_decay], dtype=like.dtype)
    numba_setup.launch(_rfadamw, pointers(params, grads, ms, vs, steps), lay.tasks, lay.chunks, hp,
                       float(beta1), float(beta2), float(batch_size), bool(bias_correction), like)
    mark_written(params)
    return None


@njit(**_OPTS)
def _rfrmsprop_piece(p, g, v, b, hp):
    sgn, keep, rate, batch, eps = hp[R_SGN], hp[R_KEEP], hp[R_RATE], hp[R_B], hp[R_EPS]
    wd, mu, nlr = hp[R_WD], hp[R_MU], hp[R_NLR]
    for i in range(len(p)):
        w = p[i]
        u = sgn * g[i]
        vi = v[i] * keep + (rate * u) * u
        v[i] = vi
        bi = b[i] * mu + (u / (batch * vi + eps) + wd * w)
        b[i] = bi
        p[i] = w + bi * nlr


@njit(parallel=True, **_OPTS)
def _rfrmsprop(ptrs, tasks, chunks, hp, like):
    for c in prange(len(chunks) - 1):
        for ti in range(chunks[c], chunks[c + 1]):
            k, off, size = tasks[ti, 0], tasks[ti, 1], tasks[ti, 2]
            p, g = array_at(ptrs[0, k], off, size, like), array_at(ptrs[1, k], off, size, like)
            v, b = array_at(ptrs[2, k], off, size, like), array_at(ptrs[3, k], off, size, like)
            _rfrmsprop_piece(p, g, v, b, hp)


def rfrmsprop_step(params, grads, states, *, lr, momentum, lr_cov, eps, weight_decay, batch_size,
                   maximize):
    r"""One root-free RMSProp step (in place). ``precondition_rootfree`` (stage docstring), u = g
    (−g when ``maximize``), α = 1 − lr_cov:

    .. math::
        v_t = \alpha v_{t-1} + (1-\alpha) u_t^2,\quad v_0 = 1/B,
        \qquad d_t = u_t / (B\, v_t + \lambda)

    then ``add_decayed_weights`` (L2 after preconditioning: d + wd·θ), ``heavy_ball`` with
    ``first="zeros"``, no dampening, no Nesterov: b_t = μ b_{t−1} + d_t (b_0 = 0), and
    ``scale_by_lr``: θ ← θ + b_t·(−lr). State: ``exp_avg_sq`` (filled 1/B), ``momentum_buffer``.
    """
    if not params:
        return None
    vs, bs = state_lists(params, states, (("exp_avg_sq", 1.0 / batch_size, None),
                                          ("momentum_buffer", 0.0, None)))
    check(params, grads, vs, bs)
    like = like_array(params[0])
    lay = layout(params, 0, False, numba_setup.threads())
    hp = np.array([-1.0 if maximize else 1.0, 1.0 - lr_cov, lr_cov, batch_size, eps, weight_decay,
                   momentum, -lr], dtype=like.dtype)
    numba_setup.launch(_rfrmsprop, pointers(params, grads, vs, bs), lay.tasks, lay.chunks, hp, like)
    mark_written(params)
    return None

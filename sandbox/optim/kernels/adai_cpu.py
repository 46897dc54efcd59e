r"""Fused CPU kernels of Adai / AdaiW: the two sweeps of ``adaptive_inertia``
(:mod:`sandbox.optim.stages.adai`).

Chains mirrored (:mod:`sandbox.optim.rules`, without projection):

- ``adai`` (coupled L2): ``add_decayed_weights → adaptive_inertia → scale_by_lr``;
- ``adaiw`` (decoupled): ``adaptive_inertia → add_decayed_weights → scale_by_lr``.

The caller runs :func:`reduce` on every parameter list (of every group), adds up the per-replica
sums and counts, and passes v̄ = total / count (per replica) to :func:`update`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

from . import numba_setup
from .layout_cpu import (array_at, check, counter_at, layout, like_array, mark_written, pointers,
                         state_lists)

SGN, WDC, B2, CB2 = range(4)  # reduce's hyperparameter vector
U_SGN, U_WDC, BETA0, ONE, ZERO, HI, NLR, WDS = range(8)  # update's
_OPTS = dict(cache=True, error_model="numpy")
_SUMS = {"reassoc", "contract", "nsz", "arcp"}


@njit(**_OPTS)
def _second_moment(p, g, v, hp):
    """v ← β2 v + (1 − β2) u², u = ±g + λ_c θ (IEEE rounding: the sum is taken apart, by
    :func:`_sum`, the only place where reassociation is allowed)."""
    sgn, wdc, b2, cb2 = hp[SGN], hp[WDC], hp[B2], hp[CB2]
    if wdc == 0:  # θ is not read at all (a stream less)
        for i in range(len(p)):
            u = sgn * g[i]
            v[i] = v[i] * b2 + (cb2 * u) * u
    else:
        for i in range(len(p)):
            u = sgn * g[i] + wdc * p[i]
            v[i] = v[i] * b2 + (cb2 * u) * u


@njit(fastmath=_SUMS, **_OPTS)
def _sum(v):
    acc = 0.0
    for i in range(len(v)):
        acc += np.float64(v[i])
    return acc


@njit(parallel=True, **_OPTS)
def _reduce(ptrs, item, tasks, chunks, hp, beta2, n_rep, like):
    n = ptrs.shape[1]
    bc2 = np.empty(n)
    for k in range(n):
        s = counter_at(ptrs[3, k])
        s[0] += 1
        bc2[k] = 1.0 - beta2 ** np.float64(s[0])
    acc = np.zeros((len(chunks) - 1, n_rep))
    for c in prange(len(chunks) - 1):
        for ti in range(chunks[c], chunks[c + 1]):
            k, pos, end = tasks[ti, 0], tasks[ti, 1], tasks[ti, 1] + tasks[ti, 2]
            while pos < end:  # the task's pieces, one per replica
                r = pos // item[k]
                stop = min(end, (r + 1) * item[k])
                n = stop - pos
                p, g = array_at(ptrs[0, k], pos, n, like), array_at(ptrs[1, k], pos, n, like)
                v = array_at(ptrs[2, k], pos, n, like)
                _second_moment(p, g, v, hp)
                acc[c, r] += _sum(v) / bc2[k]
                pos = stop
    return acc.sum(axis=0)


@njit(**_OPTS)
def _inertia(p, g, v, m, prod, hp, rbc2, vbar, rvbar):
    """β1 = clip(1 − β0 v̂/v̄, 0, 1 − eps), P ← P β1, m ← β1 m + (1 − β1) u,
    θ ← θ + (m/(1 − P) + λ_d θ)(−lr) over one replica's piece; v̂/v̄ = v·(1/bc2)·(1/v̄)."""
    sgn, wdc, beta0, one, zero, hi = hp[U_SGN], hp[U_WDC], hp[BETA0], hp[ONE], hp[ZERO], hp[HI]
    nlr, wds = hp[NLR], hp[WDS]
    guard = vbar > zero  # the stage's v̄ = 0 guard: ratio 1
    for i in range(len(p)):
        w = p[i]
        u = sgn * g[i] + wdc * w
        ratio = (v[i] * rbc2) * rvbar if guard else one
        b1 = min(max(one - beta0 * ratio, zero), hi)
        pi = prod[i] * b1
        prod[i] = pi
        mi = m[i] * b1 + (one - b1) * u
        m[i] = mi
        p[i] = w + (mi / (one - pi) + wds * w) * nlr


@njit(parallel=True, **_OPTS)
def _update(ptrs, item, tasks, chunks, hp, beta2, vbar, rvbar, like):
    n = ptrs.shape[1]
    rbc2 = np.empty(n, like.dtype)
    for k in range(n):
        rbc2[k] = 1.0 / (1.0 - beta2 ** np.float64(counter_at(ptrs[5, k])[0]))
    for c in prange(len(chunks) - 1):
        for ti in range(chunks[c], chunks[c + 1]):
            k, pos, end = tasks[ti, 0], tasks[ti, 1], tasks[ti, 1] + tasks[ti, 2]
            while pos < end:
                r = pos // item[k]
                stop = min(end, (r + 1) * item[k])
                n = stop - pos
                p, g = array_at(ptrs[0, k], pos, n, like), array_at(ptrs[1, k], pos, n, like)
                v, m = array_at(ptrs[2, k], pos, n, like), array_at(ptrs[3, k], pos, n, like)
                prod = array_at(ptrs[4, k], pos, n, like)
                _inertia(p, g, v, m, prod, hp, rbc2[k], vbar[r], rvbar[r])
                pos = stop


def _replicas(params, rd) -> tuple[int, ...]:
    shape = tuple(params[0].shape[:rd])
    assert all(tuple(p.shape[:rd]) == shape for p in params), "one replica shape per call"
    return shape


def reduce(params, grads, states, *, beta2, weight_decay, decoupled, replica_dims, maximize):
    r"""Sweep 1 of ``adaptive_inertia`` (its ``reduce``), u = g (decoupled) or g + λθ (coupled
    L2, ``add_decayed_weights`` first), −g when ``maximize``; t ← t + 1 per parameter:

    .. math:: v_t = \beta_2 v_{t-1} + (1-\beta_2) u_t^2,\quad \hat v_t = v_t/(1-\beta_2^{t})

    Returns (Σ over the parameters and their elements of v̂, per replica, float64 of the replica
    shape; elements per replica summed over the parameters). State: ``step``, ``exp_avg_sq``.
    """
    shape = _replicas(params, replica_dims) if params else ()
    n_rep = math.prod(shape)
    if not params:
        return torch.zeros(shape, dtype=torch.float64), 0
    steps, vs = state_lists(params, states, (("step", 0.0, None), ("exp_avg_sq", 0.0, None)))
    check(params, grads, vs)
    like = like_array(params[0])
    lay = layout(params, replica_dims, False, numba_setup.threads())
    wd = float(weight_decay)
    hp = np.array([-1.0 if maximize else 1.0, 0.0 if decoupled else wd, beta2, 1.0 - beta2],
                  dtype=like.dtype)
    total = numba_setup.launch(_reduce, pointers(params, grads, vs, steps), lay.item, lay.tasks,
                               lay.chunks, hp, float(beta2), n_rep, like)
    return torch.from_numpy(total).reshape(shape), int(lay.item.sum())


def update(params, grads, states, vbar, *, lr, beta0, beta2, eps, weight_decay, decoupled,
           replica_dims, maximize):
    r"""Sweep 2 of ``adaptive_inertia`` and the rest of the chain, per element (stage docstring):

    .. math::
        \beta_{1,t} = \mathrm{clip}\big(1 - \beta_0\, \hat v_t / \bar v_t,\ 0,\ 1-\epsilon\big),
        \quad
        P_t = P_{t-1}\,\beta_{1,t},\quad
        m_t = \beta_{1,t} m_{t-1} + (1-\beta_{1,t}) u_t,\quad d_t = m_t / (1 - P_t)

    with v̂/v̄ := 1 where v̄ = 0 (the stage's guard), v̂ = v/(1 − β2^t) (t as left by
    :func:`reduce`, hence ``beta2``), ``vbar`` per replica (cast to the parameters' dtype, as the
    stage does; the two divisions of v̂/v̄ are multiplications by per-tensor and per-replica
    reciprocals, an ulp apart); then θ ← θ + (d + λ_d θ)(−lr), λ_d = λ when ``decoupled``
    (AdaiW), θ the value before the step; coupled: u = g + λθ. State: ``beta1_prod`` (fill 1,
    parameters' dtype), ``exp_avg``.
    """
    if not params:
        return None
    _replicas(params, replica_dims)
    dtype = params[0].dtype
    prods, ms = state_lists(params, states, (("beta1_prod", 1.0, dtype), ("exp_avg", 0.0, None)))
    vs, steps = [st["exp_avg_sq"] for st in states], [st["step"] for st in states]
    check(params, grads, vs, ms, prods)
    like = like_array(params[0])
    lay = layout(params, replica_dims, False, numba_setup.threads())
    wd = float(weight_decay)
    hp = np.array([-1.0 if maximize else 1.0, 0.0 if decoupled else wd, beta0, 1.0, 0.0, 1.0 - eps,
                   -lr, wd if decoupled else 0.0], dtype=like.dtype)
    vb = torch.as_tensor(vbar).to(dtype).reshape(-1).numpy()
    with np.errstate(divide="ignore"):
        rvb = (1.0 / vb.astype(np.float64)).astype(vb.dtype)  # unused where v̄ = 0
    numba_setup.launch(_update, pointers(params, grads, vs, ms, prods, steps), lay.item, lay.tasks,
                       lay.chunks, hp, float(beta2), vb, rvb, like)
    mark_written(params)
    return None

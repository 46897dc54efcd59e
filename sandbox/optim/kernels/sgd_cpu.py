r"""Fused CPU kernel of the SGD family: torch's SGD (coupled L2) and the official SGDP.

Mirrors, per element, the chains of :mod:`sandbox.optim.rules`

- ``sgd`` (torch.optim.SGD, + projection): ``add_decayed_weights → heavy_ball(key=
  "momentum_buffer", first="input") → [radial_projection(eps_key="proj_eps")] → scale_by_lr``;
- ``sgdp`` (official): ``heavy_ball(key="momentum", first="zeros") → radial_projection(eps_key=
  "eps", project_momentum) → add_decayed_weights(scale_by_inverse_one_minus_momentum=True) →
  scale_by_lr``.

Same passes as :mod:`.adam_cpu`: projection verdicts, one pass row by row, a second pass for
rows where the layer view fired (d recomputed from the stored buffer).
"""
from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from . import numba_setup
from .layout_cpu import array_at, check, layout, like_array, mark_written, pointers
from .projection_cpu import LAYER, apply_projected, dot, layer_sums, prepare

# entries of the hyperparameter vector (in the parameters' dtype)
SGN, WDC, CN, MUN, NLR, WD_PLAIN, WD_FIRED = range(7)
_OPTS = dict(cache=True, error_model="numpy")


@njit(**_OPTS)
def _update(p, g, b, out, hp, mu, d1):
    """b ← μ_k b + d1_k u (u = ±g + λ_c θ), out = c_n u + μ_n b (Nesterov: u + μb; else b)."""
    sgn, wdc, cn, mun = hp[SGN], hp[WDC], hp[CN], hp[MUN]
    for i in range(len(p)):
        u = sgn * g[i] + wdc * p[i]
        bi = b[i] * mu + d1 * u
        b[i] = bi
        out[i] = cn * u + mun * bi


@njit(**_OPTS)
def _recompute(p, g, b, out, hp, has_buf):
    """The direction from the stored (updated) buffer, or u without one; nothing is written
    (with a buffer and no Nesterov, d = b: g is not read)."""
    sgn, wdc, cn, mun = hp[SGN], hp[WDC], hp[CN], hp[MUN]
    if has_buf and cn == 0:
        for i in range(len(p)):
            out[i] = b[i]
    elif has_buf:
        for i in range(len(p)):
            out[i] = cn * (sgn * g[i] + wdc * p[i]) + mun * b[i]
    else:
        for i in range(len(p)):
            out[i] = sgn * g[i] + wdc * p[i]


@njit(**_OPTS)
def _fused(p, g, b, hp, mu, d1, has_buf):
    """Buffer, direction and θ ← θ + (d + λθ)(−lr) in one loop (rows that are not projected)."""
    sgn, wdc, cn, mun, nlr, wds = hp[SGN], hp[WDC], hp[CN], hp[MUN], hp[NLR], hp[WD_PLAIN]
    if has_buf:
        for i in range(len(p)):
            w = p[i]
            u = sgn * g[i] + wdc * w
            bi = b[i] * mu + d1 * u
            b[i] = bi
            p[i] = w + ((cn * u + mun * bi) + wds * w) * nlr
    else:
        for i in range(len(p)):
            w = p[i]
            p[i] = w + ((sgn * g[i] + wdc * w) + wds * w) * nlr


@njit(parallel=True, **_OPTS)
def _main(ptrs, tasks, chunks, hp, consts, has_buf, write_buf, row_mode, row_inv, row_s,
          max_row, like, second):
    """The pass over ``tasks`` (see :func:`sandbox.optim.kernels.adam_cpu._main`): the second
    pass recomputes d from the stored buffer for rows where the layer view fired."""
    for c in prange(len(chunks) - 1):
        buf = np.empty(max_row, like.dtype)
        scal = np.empty(4, like.dtype)
        for ti in range(chunks[c], chunks[c + 1]):
            k, off, n, row = tasks[ti, 0], tasks[ti, 1], tasks[ti, 2], tasks[ti, 3]
            p = array_at(ptrs[0, k], off, n, like)
            g = array_at(ptrs[1, k], off, n, like)
            b = array_at(ptrs[2, k], off, n, like)
            if second:
                _recompute(p, g, b, buf, hp, has_buf)
                scal[0], scal[1], scal[2], scal[3] = row_inv[row], row_s[row], hp[WD_FIRED], hp[NLR]
                apply_projected(p, buf, scal, b, write_buf)
                continue
            mu, d1 = consts[k, 0], consts[k, 1]
            if row < 0 or row_mode[row] == 0:
                _fused(p, g, b, hp, mu, d1, has_buf)
                continue
            if has_buf:
                _update(p, g, b, buf, hp, mu, d1)
            else:
                _recompute(p, g, b, buf, hp, False)
            q = dot(p, buf)
            if row_mode[row] == LAYER:
                row_s[row] = q  # θ waits for the replica's whole ⟨w, d⟩ (second pass)
                continue
            inv = row_inv[row]
            scal[0], scal[1], scal[2], scal[3] = inv, inv * q, hp[WD_FIRED], hp[NLR]
            apply_projected(p, buf, scal, b, write_buf)


_NO_ROWS = (np.zeros(0, np.int8), np.zeros(0), np.zeros(0))


def step(params, grads, states, *, lr, momentum, dampening, weight_decay, nesterov, first,
         sgdp_decay_scaling, coupled, project, project_momentum, delta, wd_ratio, eps,
         replica_dims, maximize, buffer_key):
    r"""One SGD-family step over ``params`` (in place); returns the projection codes per parameter.

    ``add_decayed_weights`` first when ``coupled`` (u = g + λθ, else u = g; −g when
    ``maximize``), then ``heavy_ball`` (stage docstring), state ``buffer_key``:

    .. math::
        b_t = \mu\, b_{t-1} + (1-\tau)\, u_t, \qquad
        d_t = u_t + \mu\, b_t \ \text{(Nesterov)} \quad\text{else}\quad d_t = b_t

    ``first="input"``: b_1 = u_1 (torch), and with μ = 0 no buffer at all (d = u);
    ``first="zeros"``: b_0 = 0 (official SGDP), always a buffer.
    ``radial_projection`` (when ``project``; ``eps`` is the projection's: the caller passes
    SGDP's eps or SGD's proj_eps): d ← d − ŵ⟨ŵ, d⟩ on the view that fired, factor = wd_ratio
    there (else 1); with ``project_momentum`` the projected d is written back into the buffer
    when d IS the buffer (a buffer and no Nesterov). Decoupled ``add_decayed_weights`` (not
    ``coupled``), with ``sgdp_decay_scaling`` the factor divided by 1 − μ, and ``scale_by_lr``:
    θ ← θ + (d + λ·factor·θ)·(−lr).

    Returns per parameter a uint8 tensor of its replica shape: 0 none, 1 channel view, 2 layer
    view (shared all-zero tensors for parameters that are never projected: read-only).
    """
    if not params:
        return []
    mu, tau, wd = float(momentum), float(dampening), float(weight_decay)
    has_buf = not (first == "input" and mu == 0)
    assert first in ("input", "zeros"), first
    like = like_array(params[0])
    consts = np.empty((len(params), 2), dtype=like.dtype)
    consts[:, 0], consts[:, 1] = mu, 1.0 - tau
    if has_buf:
        for k, (p, st) in enumerate(zip(params, states)):
            if buffer_key not in st:  # torch's b_1 = u: a zero buffer and (μ, 1 − τ) = (0, 1)
                st[buffer_key] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if first == "input":
                    consts[k] = 0.0, 1.0
        bufs = [st[buffer_key] for st in states]
        check(params, grads, bufs)
    else:
        bufs = params  # never read nor written
        check(params, grads)
    lay = layout(params, replica_dims, project, numba_setup.threads())
    ptrs = pointers(params, grads, bufs)
    if coupled:
        wd_plain = wd_fired = 0.0
    else:
        scale = 1.0 / (1.0 - mu) if sgdp_decay_scaling else 1.0
        ratio = wd_ratio / (1.0 - mu) if sgdp_decay_scaling else wd_ratio
        wd_plain, wd_fired = wd * scale, wd * ratio
    hp = np.array([-1.0 if maximize else 1.0, wd if coupled else 0.0, 1.0 if nesterov else 0.0,
                   mu if nesterov else 1.0, -lr, wd_plain, wd_fired], dtype=like.dtype)
    write_buf = bool(project_momentum and has_buf and not nesterov)
    if not (project and lay.n_reps):
        numba_setup.launch(_main, ptrs, lay.tasks, lay.chunks, hp, consts, has_buf, False,
                           *_NO_ROWS, 0, like, False)
        mark_written(params)
        return lay.zero_codes()
    codes, flat, row_mode, row_inv, row_s = prepare(lay, ptrs, like, delta, eps, numba_setup.launch)
    numba_setup.launch(_main, ptrs, lay.tasks, lay.chunks, hp, consts, has_buf, write_buf,
                       row_mode, row_inv, row_s, lay.max_row, like, False)
    if (codes == LAYER).any():
        layer_sums(lay.reps, codes, row_inv, row_s)
        tasks, chunks = lay.select(row_mode, LAYER)
        numba_setup.launch(_main, ptrs, tasks, chunks, hp, consts, has_buf, write_buf, row_mode,
                           row_inv, row_s, lay.max_row, like, True)
    mark_written(params)
    return lay.codes(flat)

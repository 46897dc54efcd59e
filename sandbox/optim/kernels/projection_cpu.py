r"""Row-by-row form of ``radial_projection`` (:mod:`sandbox.optim.stages.projection`), shared by the
projecting kernels (:mod:`.adam_cpu`, :mod:`.sgd_cpu`).

The stage, per replica of a tensor with more than one item axis: try the channel view (rows of
length L), then the layer view (one row of length C·L); a view passes when

.. math:: \max_\text{rows} |\cos(g_\text{row}, w_\text{row})| < \delta/\sqrt{\text{row length}},

``cos`` being ``F.cosine_similarity(g, w, eps)``, i.e. :math:`\langle g/\max(\lVert g\rVert,
\epsilon), w/\max(\lVert w\rVert, \epsilon)\rangle` (torch clamps each norm at eps) with the RAW
gradient g; where a view passes, every row of the direction d becomes

.. math:: d - \hat w\langle\hat w, d\rangle,\qquad \hat w = w/(\lVert w\rVert + \epsilon),

and the decoupled decay after the stage is scaled by ``wd_ratio``. A NaN cosine (eps = 0 and a
zero row) fails its view, as ``amax`` propagates NaN.

Here: :func:`row_stats` takes ‖w‖², ‖g‖², ⟨w, g⟩ of every channel row in one pass over (w, g)
(float64 sums); :func:`verdict` decides both views per replica from them (the layer view's sums are
sums of its rows' sums). The rule kernel then forms d row by row and projects it with
:func:`dot` and :func:`apply_projected`; for the layer view it stores ⟨w, d⟩ per row,
:func:`layer_sums` adds them per replica, and a second pass recomputes d and applies.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .layout_cpu import array_at

NONE, CHANNEL, LAYER = 0, 1, 2  # as in sandbox.optim.stages.projection
_SUMS = {"reassoc", "contract", "nsz", "arcp"}  # row sums only: their order is free


@njit(fastmath=_SUMS, cache=True, error_model="numpy")
def _sums3(w, g):
    ww = 0.0
    gg = 0.0
    wg = 0.0
    for i in range(len(w)):
        a = np.float64(w[i])
        b = np.float64(g[i])
        ww += a * a
        gg += b * b
        wg += a * b
    return ww, gg, wg


@njit(parallel=True, cache=True, error_model="numpy")
def row_stats(p_ptr, g_ptr, rows, row_lengths, row_chunks, like, out):
    """out[row] = (‖w_row‖², ‖g_row‖², ⟨w_row, g_row⟩) for every channel row (float64)."""
    for c in prange(len(row_chunks) - 1):
        for r in range(row_chunks[c], row_chunks[c + 1]):
            k, off, n = rows[r, 0], rows[r, 1], row_lengths[r]
            ww, gg, wg = _sums3(array_at(p_ptr[k], off, n, like), array_at(g_ptr[k], off, n, like))
            out[r, 0] = ww
            out[r, 1] = gg
            out[r, 2] = wg


@njit(cache=True, error_model="numpy")
def _cos(ww, gg, wg, eps):
    """|cos| as F.cosine_similarity clamps it: each norm at least eps."""
    return abs(wg) / (max(math.sqrt(gg), eps) * max(math.sqrt(ww), eps))


@njit(cache=True, error_model="numpy")
def verdict(stats, reps, delta, eps, codes, row_mode, row_inv):
    """Per replica (``reps`` rows: first row, C, L): the code of the view that fired (channel
    first), written to ``codes``; per row: that code (``row_mode``) and 1/(‖w‖ + eps) of the view
    that fired (``row_inv``; the replica's whole norm for the layer view)."""
    for q in range(reps.shape[0]):
        first, n_rows, length = reps[q, 0], reps[q, 1], reps[q, 2]
        thr = delta / math.sqrt(length)
        passes = True
        ww = 0.0
        gg = 0.0
        wg = 0.0
        for r in range(first, first + n_rows):
            if not _cos(stats[r, 0], stats[r, 1], stats[r, 2], eps) < thr:
                passes = False
            ww += stats[r, 0]
            gg += stats[r, 1]
            wg += stats[r, 2]
        code = NONE
        if passes:
            code = CHANNEL
        elif _cos(ww, gg, wg, eps) < delta / math.sqrt(n_rows * length):
            code = LAYER
        codes[q] = code
        inv_layer = 1.0 / (math.sqrt(ww) + eps)
        for r in range(first, first + n_rows):
            row_mode[r] = code
            row_inv[r] = 1.0 / (math.sqrt(stats[r, 0]) + eps) if code == CHANNEL else inv_layer


@njit(cache=True, error_model="numpy")
def layer_sums(reps, codes, row_inv, row_s):
    """For replicas where the layer view fired, ``row_s`` holds ⟨w_row, d_row⟩ per row on entry;
    on exit every row of the replica holds ⟨ŵ, d⟩ = (Σ_rows ⟨w_row, d_row⟩)/(‖w‖ + eps)."""
    for q in range(reps.shape[0]):
        if codes[q] != LAYER:
            continue
        first, n_rows = reps[q, 0], reps[q, 1]
        total = 0.0
        for r in range(first, first + n_rows):
            total += row_s[r]
        s = row_inv[first] * total
        for r in range(first, first + n_rows):
            row_s[r] = s


@njit(fastmath=_SUMS, cache=True, error_model="numpy")
def dot(w, d):
    """⟨w, d[:len(w)]⟩ in float64 (any summation order)."""
    acc = 0.0
    for j in range(len(w)):
        acc += np.float64(w[j]) * np.float64(d[j])
    return acc


@njit(cache=True, error_model="numpy")
def apply_projected(p, d, scal, buf_out, write_buf):
    """θ ← θ + ((d − ŵ s) + λ'θ)·(−lr) over one row ``p``, ŵ = θ·inv, with ``scal`` = (inv, s, λ', −lr)
    in the parameter's dtype (λ' = the decay factor of this row, 0 for coupled rules). With
    ``write_buf`` the projected direction d − ŵ s is also stored into ``buf_out`` (SGDP's
    momentum buffer)."""
    inv, s, wds, nlr = scal[0], scal[1], scal[2], scal[3]
    if write_buf:
        for j in range(len(p)):
            w = p[j]
            dp = d[j] - (w * inv) * s
            buf_out[j] = dp
            p[j] = w + (dp + wds * w) * nlr
    else:
        for j in range(len(p)):
            w = p[j]
            p[j] = w + ((d[j] - (w * inv) * s) + wds * w) * nlr


def prepare(lay, ptrs, like, delta: float, eps: float, launch):
    """Stats and verdicts of a call: returns (codes (np uint8 view of a torch tensor), the torch
    tensor, row_mode, row_inv, row_s) — row_s to be filled by the rule kernel."""
    import torch

    n_rows = len(lay.rows)
    stats = np.empty((n_rows, 3), dtype=np.float64)
    launch(row_stats, ptrs[0], ptrs[1], lay.rows, lay.row_lengths, lay.row_chunks,
           like, stats)
    flat = torch.empty(lay.n_reps, dtype=torch.uint8)
    codes = flat.numpy()
    row_mode = np.empty(n_rows, dtype=np.int8)
    row_inv = np.empty(n_rows, dtype=np.float64)
    verdict(stats, lay.reps, float(delta), float(eps), codes, row_mode, row_inv)
    return codes, flat, row_mode, row_inv, np.zeros(n_rows, dtype=np.float64)

r"""List form of ``radial_projection`` (:mod:`sandbox.optim.stages.projection`; Heo et al., ICLR 2021).

Both views need only four sums per channel row r of a weight θ, its raw gradient g and the
direction T (all per replica):

.. math:: a_r = \lVert\theta_r\rVert,\quad b_r = \lVert g_r\rVert,\quad
          s_r = \langle\theta_r, g_r\rangle,\quad q_r = \langle\theta_r, T_r\rangle .

Channel view: :math:`\cos_r = |s_r| / (\max(a_r,\epsilon)\max(b_r,\epsilon))` (this is
``F.cosine_similarity``'s clamping), passing when :math:`\max_r \cos_r < \delta/\sqrt{L}`.
Layer view: the same with the sums over rows (:math:`\lVert\theta\rVert^2 = \sum_r a_r^2`, ...)
and the threshold :math:`\delta/\sqrt{CL}`. The channel view has priority. The projection
:math:`T_r - \hat\theta_r\langle\hat\theta_r, T_r\rangle` with
:math:`\hat\theta = \theta/(\lVert\theta\rVert+\epsilon)` is :math:`T_r + k_r\theta_r` with
:math:`k_r = -q_r/(a_r+\epsilon)^2` (channel) or :math:`-\sum q/(\lVert\theta\rVert+\epsilon)^2`
(layer): a per-row coefficient on θ, i.e. a change of the lazy direction's α, so the projected
direction is never written (except into SGDP's momentum buffer, ``project_momentum``).

Cost per weight: two norms and two batched row products (:func:`row_stats`, no temporary); every
verdict is computed for all rows of the chunk at once with segment reductions, without host
synchronisation.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..stages import radial_projection
from ..stages.projection import CHANNEL, LAYER, NONE
from .direction import Direction
from .plan import Chunk
from .stage_forms import FastContext, _tensor_u


def row_stats(x: Tensor, y: Tensor, z: Tensor, out: Tensor) -> None:
    """out[:, r] = (‖x_r‖, ‖y_r‖, ⟨x_r, y_r⟩, ⟨x_r, z_r⟩) for (n, L) row views, no temporary:
    the row-wise dot products are a batch of 1×L by L×1 matrix products."""
    n, length = x.shape
    torch.linalg.vector_norm(x, dim=1, out=out[0])
    torch.linalg.vector_norm(y, dim=1, out=out[1])
    rows = x.view(n, 1, length)
    torch.bmm(rows, y.view(n, 1, length).transpose(1, 2), out=out[2].view(n, 1, 1))
    torch.bmm(rows, z.view(n, 1, length).transpose(1, 2), out=out[3].view(n, 1, 1))


def _constants(chunk: Chunk, delta: float, wd_ratio: float, device, dtype) -> tuple:
    """Per-segment thresholds of both views and the decay factor of each verdict code (cached)."""
    key = ("constants", delta, wd_ratio, dtype)
    if key not in chunk.cache:
        lengths = torch.tensor(chunk.seg_lengths, dtype=torch.float64)
        rows = chunk.seg_rows.to("cpu", torch.float64)
        factor = torch.zeros(3, dtype=torch.float64)  # indexed by the verdict code
        factor[NONE], factor[CHANNEL], factor[LAYER] = 1.0, wd_ratio, wd_ratio
        chunk.cache[key] = tuple(x.to(device, dtype) for x in (
            delta / lengths.sqrt(), delta / (lengths * rows).sqrt(), factor))
    return chunk.cache[key]


def _zero_codes(chunk: Chunk, device) -> list[Tensor]:
    """'no view fired' codes (uint8, one per replica) for every tensor of the chunk; cached and
    shared between steps (diagnostics: treat as read-only)."""
    if "zero_codes" not in chunk.cache:
        z = torch.zeros(sum(math.prod(r) for r in chunk.replica_shapes), dtype=torch.uint8,
                        device=device)
        chunk.cache["zero_codes"] = [c.view(r) for c, r in zip(
            z.split([math.prod(r) for r in chunk.replica_shapes]), chunk.replica_shapes)]
    return chunk.cache["zero_codes"]


def projection(stage: radial_projection, d: Direction, fc: FastContext) -> Direction:
    """``radial_projection`` for a chunk (see the module docstring for the algebra)."""
    chunk, ps, gs = fc.chunk, fc.params, fc.grads
    p0 = ps[0]
    for info, z in zip(fc.infos, _zero_codes(chunk, p0.device)):
        info["projection"] = z
    if not chunk.proj:
        return d
    T = _tensor_u(d, fc)
    delta, eps, wd_ratio = fc.hp["delta"], fc.hp[stage.eps_key], fc.hp["wd_ratio"]
    stats = chunk.cache.get("stats")
    if stats is None:
        stats = chunk.cache["stats"] = torch.empty(4, chunk.n_proj_rows, dtype=p0.dtype,
                                                   device=p0.device)
    for start, end, idx in chunk.stat_groups:  # a big tensor alone; small ones batched by row length
        rows = [torch.cat([chunk.proj_rows(x[i], i) for i in idx]) if len(idx) > 1
                else chunk.proj_rows(x[idx[0]], idx[0]) for x in (ps, gs, T)]
        row_stats(*rows, stats[:, start:end])
    k_all, k_views, ratio_all, fired = _verdict(chunk, stats, delta, eps, wd_ratio)
    fc.decay_scale = ratio_all if fc.decay_scale is None else fc.decay_scale * ratio_all
    codes = fired.unbind() if fc.rd == 0 else [
        c.view(chunk.replica_shapes[i]) for c, i in
        zip(fired.split([math.prod(chunk.replica_shapes[i]) for i in chunk.proj]), chunk.proj)]
    for i, c in zip(chunk.proj, codes):
        fc.infos[i]["projection"] = c
    if fc.hp.get("project_momentum", False) and d.state_key is not None:
        # official SGDP: the direction IS the momentum buffer, projected in place
        torch._foreach_addcmul_([T[i] for i in chunk.proj], [ps[i] for i in chunk.proj],
                                [k_views[i] for i in chunk.proj])
        return d
    d.add_alpha(k_all)
    return d


def _verdict(chunk: Chunk, stats: Tensor, delta: float, eps: float, wd_ratio: float):
    """Both views' verdicts for every segment of the chunk from the row sums ``stats`` =
    (a, b, s, q), and the projection written as per-row coefficients: ``k`` on θ (0 where nothing
    fired) and the decay factor (``wd_ratio`` where a view fired, else 1), into the chunk's row
    buffers (rows past the projectable ones keep 0 and 1). Returns (k, its per-tensor views,
    factor, fired codes per segment). Small-vector work, counted in kernel launches: each op here
    runs once per chunk and step."""
    n, seg, lengths = chunk.n_proj_rows, chunk.seg_of_row, chunk.seg_rows
    a, b, s, q = stats
    thr_c, thr_l, factor = _constants(chunk, delta, wd_ratio, stats.device, stats.dtype)
    # channel view: cos_r = |s_r| / (max(a_r, ε) max(b_r, ε)), the verdict on its max per segment
    norms = stats[:2].clamp_min(eps)
    cos_c = torch.segment_reduce(s.abs().div_(norms[0].mul_(norms[1])), "max", lengths=lengths,
                                 unsafe=True)  # the lengths are right by construction
    # layer view: the same over the sums of a segment's rows, (Σa², Σb², Σs, Σq) per segment
    sums = torch.segment_reduce(torch.cat([stats[:2].square(), stats[2:]]).t(), "sum",
                                lengths=lengths, axis=0, unsafe=True)
    norms_l = sums[:, :2].sqrt()
    cos_l = sums[:, 2].abs().div_(norms_l.clamp_min(eps).prod(1))
    pass_c = cos_c < thr_c
    pass_l = (cos_l < thr_l).logical_and_(~pass_c)  # the channel view has priority
    fired = pass_l.to(torch.uint8).mul_(LAYER).add_(pass_c)  # + CHANNEL·pass_c (asserted below)
    # k: −q_r/(a_r+ε)² where the channel view fired, −Σq/(‖θ‖+ε)² of the segment where the layer
    # view fired, 0 elsewhere
    k_layer = torch.where(pass_l, sums[:, 3].div((norms_l[:, 0] + eps).square_()).neg_(), 0.0)
    k_all, k_views = chunk.row_buffer("proj_k")
    torch.where(pass_c.index_select(0, seg), q.div((a + eps).square_()).neg_(),
                k_layer.index_select(0, seg), out=k_all[:n])
    ratio_all, _ = chunk.row_buffer("proj_ratio", init=1.0)
    torch.index_select(factor.index_select(0, fired.long()), 0, seg, out=ratio_all[:n])
    return k_all, k_views, ratio_all, fired


assert (NONE, CHANNEL) == (0, 1), "_verdict adds the channel verdict as the code CHANNEL = 1"

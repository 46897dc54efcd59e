"""Plumbing of the fast path: chunks of tensors, one shared scratch workspace, row bookkeeping.

No math lives here. A :class:`Chunk` is a run of parameters of one param group (same device and
dtype) whose total size fits the workspace; each gets a scratch view of its own shape carved from
one flat buffer, so a chunk's stages can run as list ("foreach") operations while the extra memory
of a step stays at most the size of the largest parameter tensor (or ``MIN_BUDGET`` elements when
every tensor is smaller: small tensors are batched, see :mod:`sandbox.optim.fast.executor`).

Rows. Every tensor of a chunk owns a run of entries in the chunk's *row vectors* (the per-row
coefficients the projection and the decay put on θ, and the projection's statistics):

- a tensor that can be projected (at least two axes per replica, non-empty) owns one row per
  (replica, output channel): ``prod(R)·C`` rows of length ``L = numel/(prod(R)·C)``;
- any other tensor owns one row per replica (``prod(R)`` rows).

Projectable tensors come first, so the projection's statistics are the leading ``n_proj_rows``
entries. A *segment* is one (projectable tensor, replica) pair: its rows are contiguous.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

BIG_TENSOR = 1 << 15  # elements from which a tensor gets its own one-pass kernels


@dataclass
class TensorRows:
    """Where one tensor's rows live in its chunk's row vectors."""

    index: int  # position in the chunk
    rd: int
    replicas: tuple[int, ...]  # R
    projectable: bool
    channels: int  # C (1 when not projectable)
    row_length: int  # L
    offset: int  # first row in the row vectors
    n_rows: int  # prod(R)·C

    def broadcast_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape that makes a slice of a row vector broadcast against the tensor."""
        item_ndim = len(shape) - self.rd
        if self.projectable:
            return self.replicas + (self.channels,) + (1,) * (item_ndim - 1)
        return self.replicas + (1,) * item_ndim


@dataclass
class Chunk:
    """A run of parameters stepped together, with their scratch views and row bookkeeping."""

    params: list[Tensor]
    rows: list[TensorRows]
    workspace: "Workspace"
    n_rows: int
    n_proj_rows: int
    proj: list[int]  # indices (into params) of projectable tensors, in row order
    seg_rows: Tensor  # rows per segment (int64, on the device), segments in row order
    seg_lengths: list[int]  # row length L of each segment (python)
    seg_of_row: Tensor  # segment index of each projectable row (int64, device)
    replica_shapes: list[tuple[int, ...]]
    cache: dict = field(default_factory=dict)  # scratch and row-vector buffers, their per-tensor views
    stat_groups: list = field(default_factory=list)  # (first row, end row, projectable tensors)
    big: list[int] = field(default_factory=list)  # tensors written per tensor (``out=`` kernels)
    small: list[int] = field(default_factory=list)  # tensors written by list kernels

    @property
    def scratch(self) -> list[Tensor]:
        """One scratch view per tensor, shaped like it, carved from the shared workspace. The
        workspace is allocated on first use: chains that never need a scratch (SGDP, whose
        direction is its momentum buffer) keep no extra memory."""
        p0 = self.params[0]
        flat = self.workspace.get(p0.dtype, p0.device)
        views = self.cache.get("scratch")
        if views is None or views[0] is not flat:
            out, at = [], 0
            for p in self.params:
                out.append(flat[at:at + p.numel()].view(p.shape))
                at += p.numel()
            views = self.cache["scratch"] = (flat, out)
        return views[1]

    def parts(self, *lists: list) -> tuple[list[tuple], tuple[list, ...] | None]:
        """``lists`` split into per-tensor tuples for the big tensors and sublists for the small
        ones: a big tensor gets one-pass ``out=`` kernels, small ones few list ("foreach") calls
        (an extra copy pass, but one dispatch for all of them)."""
        big = [tuple(x[i] for x in lists) for i in self.big]
        if not self.small:
            return big, None
        if len(self.small) == len(self.params):
            return big, lists
        return big, tuple([x[i] for i in self.small] for x in lists)

    def row_views(self, vec: Tensor) -> list[Tensor]:
        """Per-tensor views of a row vector (length ``n_rows``), shaped to broadcast."""
        return [vec[r.offset:r.offset + r.n_rows].view(r.broadcast_shape(tuple(p.shape)))
                for p, r in zip(self.params, self.rows)]

    def row_buffer(self, name: str, init: float = 0.0) -> tuple[Tensor, list[Tensor]]:
        """A persistent row vector ``name`` (``init`` everywhere when created) and its per-tensor
        views, cached."""
        if name not in self.cache:
            p = self.params[0]
            vec = torch.full((self.n_rows,), init, dtype=p.dtype, device=p.device)
            self.cache[name] = (vec, self.row_views(vec))
        return self.cache[name]

    def proj_rows(self, x: Tensor, i: int) -> Tensor:
        """Tensor ``x`` (shaped like param ``i``) as ``(prod(R)·C, L)`` rows."""
        r = self.rows[i]
        return x.reshape(r.n_rows, r.row_length)


def _tensor_rows(p: Tensor, rd: int, index: int, offset: int) -> TensorRows:
    replicas = tuple(p.shape[:rd])
    item = tuple(p.shape[rd:])
    n_rep = math.prod(replicas)
    projectable = len(item) > 1 and p.numel() > 0
    channels = item[0] if projectable else 1
    length = math.prod(item) // channels if projectable else math.prod(item)
    return TensorRows(index, rd, replicas, projectable, channels, length, offset, n_rep * channels)


def build_chunks(params: list[Tensor], rd: int, budget: int, workspace: "Workspace") -> list[Chunk]:
    """Split ``params`` (one group, one device and dtype) into chunks of total size <= budget."""
    chunks, run, size = [], [], 0
    for p in params:
        if run and size + p.numel() > budget:
            chunks.append(_make_chunk(run, rd, workspace))
            run, size = [], 0
        run.append(p)
        size += p.numel()
    if run:
        chunks.append(_make_chunk(run, rd, workspace))
    return chunks


def _make_chunk(params: list[Tensor], rd: int, workspace: "Workspace") -> Chunk:
    p0 = params[0]
    proj = [i for i, p in enumerate(params) if _tensor_rows(p, rd, i, 0).projectable]
    rest = [i for i in range(len(params)) if i not in proj]
    # small projectable tensors grouped by row length: their row sums are taken in one call
    proj.sort(key=lambda i: (params[i].numel() >= BIG_TENSOR, _tensor_rows(params[i], rd, i, 0).row_length, i))
    rows: list[TensorRows | None] = [None] * len(params)
    offset = 0
    for i in proj + rest:
        rows[i] = _tensor_rows(params[i], rd, i, offset)
        offset += rows[i].n_rows
    n_proj_rows = sum(rows[i].n_rows for i in proj)
    seg_rows, seg_len = [], []
    for i in proj:
        seg_rows += [rows[i].channels] * math.prod(rows[i].replicas)
        seg_len += [rows[i].row_length] * math.prod(rows[i].replicas)
    # (first row, end row, tensors): a big tensor alone, or small ones with one row length, at
    # most BIG_TENSOR elements together (their rows are copied together for the row sums)
    stat_groups: list[tuple[int, int, list[int]]] = []
    for i in proj:
        r = rows[i]
        last = stat_groups[-1] if stat_groups else None
        if (last and params[i].numel() < BIG_TENSOR and params[last[2][-1]].numel() < BIG_TENSOR
                and rows[last[2][-1]].row_length == r.row_length
                and sum(params[j].numel() for j in last[2]) + params[i].numel() <= BIG_TENSOR):
            stat_groups[-1] = (last[0], r.offset + r.n_rows, last[2] + [i])
        else:
            stat_groups.append((r.offset, r.offset + r.n_rows, [i]))
    seg_rows_t = torch.tensor(seg_rows, dtype=torch.int64, device=p0.device)
    seg_of_row = torch.repeat_interleave(torch.arange(len(seg_rows), device=p0.device), seg_rows_t)
    return Chunk(params=list(params), rows=rows, workspace=workspace, n_rows=offset,
                 n_proj_rows=n_proj_rows, proj=proj, seg_rows=seg_rows_t, seg_lengths=seg_len,
                 seg_of_row=seg_of_row, replica_shapes=[tuple(p.shape[:rd]) for p in params],
                 stat_groups=stat_groups,
                 big=[i for i, p in enumerate(params) if p.numel() >= BIG_TENSOR],
                 small=[i for i, p in enumerate(params) if p.numel() < BIG_TENSOR])


class Workspace:
    """One flat scratch buffer per (dtype, device), of the capacity the executor reserved (the
    chunk budget); allocated on first use and kept across steps (no allocation in the hot loop)."""

    def __init__(self):
        self._flat: dict[tuple, Tensor] = {}
        self._capacity: dict[tuple, int] = {}

    def reserve(self, dtype: torch.dtype, device: torch.device, numel: int) -> bool:
        """Make room for ``numel`` elements (allocated by the next :meth:`get`); True when the
        capacity grew (chunks made for the old one are stale)."""
        key = (dtype, device)
        if self._capacity.get(key, 0) >= numel:
            return False
        self._capacity[key] = max(numel, 1)
        self._flat.pop(key, None)
        return True

    def capacity(self, dtype: torch.dtype, device: torch.device) -> int:
        return self._capacity[(dtype, device)]

    def get(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        key = (dtype, device)
        if key not in self._flat:
            self._flat[key] = torch.empty(self._capacity[key], dtype=dtype, device=device)
        return self._flat[key]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._flat.values())

"""Lists of CPU tensors as tables a numba kernel walks: raw data pointers, and the work layout.

A kernel receives every tensor of a call at once, as an int64 table of data pointers (one row per
role: parameter, gradient, each state tensor), and wraps each pointer into an array with
:func:`array_at`. Python does a few C-level passes over the lists per call (``data_ptr``), never a
per-tensor torch operation.

The work of a call is a table of *tasks* (columns ``TENSOR, OFFSET, LENGTH, ROW``): a projectable
tensor (more than one item axis per replica, numel > 0, and the projection on) contributes one
task per channel row, ``ROW`` being the row's index in the call's row table; every other tensor
contributes blocks of at most :data:`BLOCK` elements (``ROW = -1``). Consecutive tasks are cut
into one chunk per thread holding about the same number of elements (``prange`` over chunks).

Rows and replicas follow :func:`sandbox.optim.replicas.rows`: with ``replica_dims = rd`` a tensor
is viewed as ``(R, C, L)``, R = prod(shape[:rd]) replicas, C = shape[rd] channel rows of length
L = prod(shape[rd + 1:]) each; the layer view of replica r is its C rows together.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from operator import attrgetter, itemgetter

import numpy as np
import torch
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

TENSOR, OFFSET, LENGTH, ROW = range(4)
BLOCK = 1 << 14  # elements per task of a tensor that is not projected
_DTYPE, _IS_CPU, _NBYTES = attrgetter("dtype"), attrgetter("is_cpu"), attrgetter("nbytes")
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 16


@intrinsic
def _voidptr(typingctx, addr):
    if not isinstance(addr, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(addr), codegen


@njit(cache=True)
def array_at(addr, off, n, like):
    """Elements ``off .. off + n`` of the tensor at address ``addr`` as a 1-D array of ``like``'s
    dtype (no copy). Kernels loop over such views from index 0: an index known to be
    non-negative keeps numba's negative-index wraparound out of the loop, which would stop it
    from being vectorised."""
    return carray(_voidptr(addr + off * like.itemsize), (n,), like.dtype)


@njit(cache=True)
def counter_at(addr):
    """A 0-d float32 ``step`` tensor's element as a 1-element array (no copy)."""
    return carray(_voidptr(addr), (1,), np.float32)


def like_array(t: torch.Tensor) -> np.ndarray:
    """An empty numpy array of ``t``'s dtype: the kernels' dtype argument."""
    return np.empty(0, dtype=np.float32 if t.dtype == torch.float32 else np.float64)


def pointers(*lists) -> np.ndarray:
    """``(len(lists), n)`` int64 table of the tensors' data pointers, one row per list."""
    n = len(lists[0])
    out = np.empty((len(lists), n), dtype=np.int64)
    for i, ts in enumerate(lists):
        out[i] = np.fromiter(map(torch.Tensor.data_ptr, ts), dtype=np.int64, count=n)
    return out


def balanced(lengths: np.ndarray, n_chunks: int) -> np.ndarray:
    """Boundaries (n_chunks + 1 indices) cutting consecutive items into chunks of about equal
    total length."""
    cum = np.cumsum(lengths, dtype=np.int64)
    total = int(cum[-1]) if len(cum) else 0
    targets = np.arange(1, n_chunks, dtype=np.float64) * (total / n_chunks)
    inner = np.searchsorted(cum, targets, side="right")
    return np.concatenate(([0], inner, [len(lengths)])).astype(np.int64)


class Layout:
    """The work layout of one list of shapes (see the module docstring).

    Attributes: ``numel`` and ``item`` (elements per replica) per tensor; ``tasks`` and
    ``chunks``; ``rows`` (per channel row: tensor, offset, replica index) with ``row_chunks``;
    ``reps`` (per projectable replica: first row, C, L); ``max_row`` (the longest row, 0 if none);
    and the codes' placement (``rep_start``, ``replica_shapes``, ``projectable``).
    """

    def __init__(self, shapes: list[tuple[int, ...]], rd: int, project: bool, n_chunks: int):
        n = len(shapes)
        self.numel = np.array([math.prod(s) for s in shapes], dtype=np.int64)
        self.item = np.array([math.prod(s[rd:]) for s in shapes], dtype=np.int64)
        self.replica_shapes = [tuple(s[:rd]) for s in shapes]
        self.projectable = [project and len(s) - rd >= 2 and math.prod(s) > 0 for s in shapes]
        tasks, rows, reps = [], [], []
        self.rep_start = np.zeros(n + 1, dtype=np.int64)
        n_rows = n_reps = 0
        for k, s in enumerate(shapes):
            numel = int(self.numel[k])
            if self.projectable[k]:
                r_count, c, length = math.prod(s[:rd]), s[rd], math.prod(s[rd + 1:])
                ids = np.arange(r_count * c, dtype=np.int64)
                t = np.empty((len(ids), 4), dtype=np.int64)
                t[:, TENSOR], t[:, OFFSET], t[:, LENGTH] = k, ids * length, length
                t[:, ROW] = n_rows + ids
                tasks.append(t)
                rows.append(np.stack([np.full_like(ids, k), ids * length, n_reps + ids // c], axis=1))
                first = n_rows + np.arange(r_count, dtype=np.int64) * c
                reps.append(np.stack([first, np.full_like(first, c), np.full_like(first, length)],
                                     axis=1))
                n_rows += len(ids)
                n_reps += r_count
            elif numel:
                off = np.arange(0, numel, BLOCK, dtype=np.int64)
                t = np.empty((len(off), 4), dtype=np.int64)
                t[:, TENSOR], t[:, OFFSET], t[:, ROW] = k, off, -1
                t[:, LENGTH] = np.minimum(BLOCK, numel - off)
                tasks.append(t)
            self.rep_start[k + 1] = n_reps
        self.tasks = np.concatenate(tasks) if tasks else np.zeros((0, 4), dtype=np.int64)
        self.rows = np.concatenate(rows) if rows else np.zeros((0, 3), dtype=np.int64)
        self.reps = np.concatenate(reps) if reps else np.zeros((0, 3), dtype=np.int64)
        self.n_chunks = n_chunks
        self.chunks = balanced(self.tasks[:, LENGTH], n_chunks)
        row_lengths = self.reps[:, 2].repeat(self.reps[:, 1]) if n_reps else np.zeros(0, np.int64)
        self.row_lengths = row_lengths
        self.row_chunks = balanced(row_lengths, n_chunks)
        self.max_row = int(row_lengths.max()) if n_rows else 0
        self.n_reps = n_reps
        self._zero_codes = None
        self._code_plan = None

    def zero_codes(self) -> list[torch.Tensor]:
        """'Not projected' codes for every tensor, shared between calls (read-only diagnostics)."""
        if self._zero_codes is None:
            shared: dict = {}
            self._zero_codes = [shared.setdefault(s, torch.zeros(s, dtype=torch.uint8))
                                for s in self.replica_shapes]
        return self._zero_codes

    def codes(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Per tensor: its replicas' codes, a view of ``flat`` (one code per projectable replica)
        where projectable, the shared zeros elsewhere."""
        if self._code_plan is None:
            proj = [k for k, yes in enumerate(self.projectable) if yes]
            self._code_plan = (proj, [int(self.rep_start[k + 1] - self.rep_start[k]) for k in proj],
                               len({len(self.replica_shapes[k]) for k in proj} - {0, 1}) == 0)
        proj, sizes, flat_shapes = self._code_plan
        if not any(self.replica_shapes):  # rd = 0: one 0-d code per projectable tensor
            pieces = flat.unbind()
        elif flat_shapes:  # rd = 1: the split pieces have the replica shapes
            pieces = flat.split(sizes)
        else:
            pieces = [x.view(self.replica_shapes[k]) for x, k in zip(flat.split(sizes), proj)]
        if len(proj) == len(self.projectable):
            return list(pieces)
        out = list(self.zero_codes())
        for k, piece in zip(proj, pieces):
            out[k] = piece
        return out

    def select(self, row_mode: np.ndarray, mode: int) -> tuple[np.ndarray, np.ndarray]:
        """The tasks whose row has ``row_mode == mode``, and their chunk boundaries."""
        row = self.tasks[:, ROW]
        picked = np.flatnonzero(row >= 0)
        picked = picked[row_mode[row[picked]] == mode]
        sub = self.tasks[picked]
        return sub, balanced(sub[:, LENGTH], self.n_chunks)


def layout(params: list[torch.Tensor], rd: int, project: bool, n_chunks: int) -> Layout:
    """The :class:`Layout` of ``params`` (cached by shapes, rd, project and chunk count)."""
    shapes = tuple(p.shape for p in params)
    key = (shapes, rd, bool(project), n_chunks)
    lay = _CACHE.get(key)
    if lay is None:
        lay = _CACHE[key] = Layout([tuple(s) for s in shapes], rd, project, n_chunks)
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return lay


def state_lists(params, states, specs) -> list[list[torch.Tensor]]:
    """Per state key of ``specs`` (``(key, fill, dtype)``, dtype None = the parameter's), the list of
    that state tensor over the parameters, creating absent ones as the stages do
    (``Context.state_tensor``: ``full_like(param, fill, dtype)``; ``step``: a 0-d CPU float32
    tensor at 0), in the order of ``specs``."""
    try:
        return [list(map(itemgetter(key), states)) for key, _, _ in specs]
    except KeyError:
        pass
    for p, st in zip(params, states):
        for key, fill, dtype in specs:
            if key in st:
                continue
            if key == "step":
                st[key] = torch.tensor(0.0, dtype=torch.float32)
            else:
                st[key] = torch.full_like(p, fill, dtype=dtype, memory_format=torch.preserve_format)
    return [list(map(itemgetter(key), states)) for key, _, _ in specs]


def mark_written(params) -> None:
    """Bump the parameters' autograd version counters, as torch's in-place optimizer steps do
    (the kernels write through raw pointers, which torch cannot see): a graph that saved a
    parameter then refuses a backward pass after the step instead of using the new values."""
    torch.autograd.graph.increment_version(params)


def check(params, *lists) -> None:
    """The callers' preconditions, asserted where a breach would read or write out of bounds:
    contiguous CPU tensors of one floating dtype, and every list's tensors holding as many bytes
    as their parameters (C-level passes over the lists, about 0.05 µs per tensor and pass;
    shapes and the state's dtypes are the caller's to validate)."""
    dtype = params[0].dtype
    assert dtype in (torch.float32, torch.float64), dtype
    assert all(map(_IS_CPU, params)), "CPU tensors only"
    assert set(map(_DTYPE, params)) == {dtype}, "one dtype per call"
    nbytes = list(map(_NBYTES, params))
    for ts in (params,) + lists:
        assert len(ts) == len(params)
        assert all(map(torch.Tensor.is_contiguous, ts)), "kernels take contiguous tensors"
        assert ts is params or list(map(_NBYTES, ts)) == nbytes, "sizes differ"

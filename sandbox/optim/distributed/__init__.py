"""Sharded parameters: what the optimizer reads of a DTensor's placement, its local views, and the
one collective of a round.

Under FSDP2 (``fully_shard``) every parameter, gradient and state tensor is a DTensor sharded along
dim 0 over a 1-D device mesh (``Shard(0)``, torch.chunk sizes: uneven, possibly empty shards).
The stages run on the LOCAL shards (``DTensor._local_tensor``: in-place writes update the DTensor)
and every cross-element statistic is an explicit request (:class:`~sandbox.optim.stages.Reduce`)
that :mod:`sandbox.optim.forms.rounds` batches: one ``all_gather`` of one packed float64 buffer per
round, combined in rank order so that every rank gets bit-identical values. Optimizer state stays
DTensors sharded like their parameter, so ``torch.distributed.checkpoint`` saves and loads it.

Supported placements: ``Shard(0)`` and ``Replicate()`` on a 1-D mesh (all sharded parameters on
one mesh). Anything else is refused at the first step, naming the parameter and the placement.
Plain tensors (one process, DDP: gradients already averaged) need no collective at all.
"""
from __future__ import annotations

import math
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor

_DT = None  # the DTensor class, imported on first use (importing torch.distributed.tensor costs)


def _dtensor_cls():
    global _DT
    if _DT is None:
        from torch.distributed.tensor import DTensor
        _DT = DTensor
    return _DT


def is_dtensor(t: Any) -> bool:
    """Whether ``t`` is a DTensor (cheap for plain tensors: no import)."""
    if type(t) is Tensor or type(t) is torch.nn.Parameter and type(t.data) is Tensor:
        return False
    if not isinstance(t, Tensor) or not torch.distributed.is_available():
        return False
    return isinstance(t, _dtensor_cls())


def local(t: Tensor) -> Tensor:
    """The local shard of a DTensor (the tensor itself otherwise); writes to it update the DTensor."""
    if type(t) is Tensor:
        return t
    lt = getattr(t, "_local_tensor", None)
    if lt is not None:
        return lt
    return t.to_local() if is_dtensor(t) else t


@dataclass(frozen=True)
class ShardSpec:
    """How one DTensor parameter is laid out. ``sharded``: Shard(0) (else Replicate)."""

    mesh: Any
    group: Any
    ranks: tuple  # the group's global ranks, in group order
    rank: int  # this process's index in the group
    placements: tuple
    sharded: bool
    start: int  # this shard's first index along dim 0
    length: int  # its size along dim 0
    size: int  # the full size of dim 0

    @property
    def world(self) -> int:
        return len(self.ranks)


def chunk_bounds(n: int, world: int, rank: int) -> tuple[int, int]:
    """(start, length) of ``rank``'s part of ``n`` rows under torch.chunk (DTensor's Shard)."""
    size = math.ceil(n / world) if world else 0
    start = min(rank * size, n)
    return start, max(0, min(n, start + size) - start)


def _placement_text(t) -> str:
    return f"placements {tuple(t.placements)} on a {t.device_mesh.ndim}-D mesh {tuple(t.device_mesh.shape)}"


def shard_spec(p: Tensor, where: str) -> Optional[ShardSpec]:
    """The layout of parameter ``p`` (None for a plain tensor); raises ValueError for a placement
    the optimizer cannot make exact (``where`` names the parameter)."""
    if not is_dtensor(p):
        return None
    from torch.distributed.tensor import Replicate, Shard

    mesh = p.device_mesh
    pl = tuple(p.placements)
    if mesh.ndim != 1 or len(pl) != 1 or not (
            (type(pl[0]) is Shard and pl[0].dim == 0) or isinstance(pl[0], Replicate)):
        raise ValueError(
            f"{where} is a DTensor with {_placement_text(p)}; the optimizer runs sharded "
            f"parameters exactly when they are Shard(0) (FSDP2's fully_shard) or Replicate() on a "
            f"1-D mesh. Other layouts (tensor parallelism, HSDP's 2-D mesh, a shard along another "
            f"dim) are refused rather than stepped with per-shard statistics.")
    group = mesh.get_group()
    ranks = tuple(torch.distributed.get_process_group_ranks(group))
    rank = mesh.get_local_rank()
    sharded = isinstance(pl[0], Shard)
    n = p.shape[0] if p.dim() else 1
    lt = local(p)
    if sharded:
        start, length = chunk_bounds(n, len(ranks), rank)
        if lt.dim() != p.dim() or lt.shape[0] != length or tuple(lt.shape[1:]) != tuple(p.shape[1:]):
            raise ValueError(
                f"{where}: its local shard has shape {tuple(lt.shape)}, not the torch.chunk part "
                f"({length} of {n} rows) that Shard(0) on rank {rank} of {len(ranks)} holds")
    else:
        start, length = 0, n
    return ShardSpec(mesh, group, ranks, rank, pl, sharded, start, length, n)


def check_grad(p: Tensor, spec: Optional[ShardSpec], where) -> None:
    """The gradient of a DTensor parameter is laid out like it (a Partial gradient is refused).
    ``where()`` names the parameter (called only to word a refusal)."""
    g = p.grad
    if spec is None:
        if is_dtensor(g):
            raise ValueError(f"{where()} is a plain tensor but its gradient a DTensor ({_placement_text(g)})")
        return
    if not is_dtensor(g) or tuple(g.placements) != spec.placements or (
            g.device_mesh is not spec.mesh and g.device_mesh != spec.mesh):
        where = where()
        what = _placement_text(g) if is_dtensor(g) else "a plain tensor"
        raise ValueError(
            f"{where} has {_placement_text(p)} but its gradient {what}; the gradient must be laid "
            f"out like its parameter (FSDP2 reduce-scatters it to Shard(0))")


class LocalState(MutableMapping):
    """A parameter's state as its stages see it under sharding: DTensor values read as their local
    shards; a plain tensor of the local shard's shape written by a stage is stored as a DTensor
    laid out like the parameter (sharing the stage's tensor), so that the optimizer's state stays
    sharded like its parameter (``torch.distributed.checkpoint`` saves it as such)."""

    __slots__ = ("_state", "_param", "_shape")

    def __init__(self, state: dict, param: Tensor, local_param: Tensor):
        self._state, self._param, self._shape = state, param, local_param.shape

    @property
    def raw(self) -> dict:
        """The optimizer's own state dict of the parameter (DTensor values)."""
        return self._state

    def __getitem__(self, key):
        v = self._state[key]
        return v if type(v) is Tensor else local(v)

    def __setitem__(self, key, v) -> None:
        if type(v) is Tensor and v.dim() > 0 and v.shape == self._shape:
            p = self._param
            v = _dtensor_cls().from_local(v, p.device_mesh, p.placements, run_check=False,
                                          shape=p.shape, stride=p.stride())
        self._state[key] = v

    def __delitem__(self, key) -> None:
        del self._state[key]

    def __iter__(self):
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)

    def __contains__(self, key) -> bool:
        return key in self._state


def all_gather(buffer: Tensor, spec: ShardSpec) -> list[Tensor]:
    """One collective: every rank's ``buffer`` (same size on every rank), in group order."""
    out = [torch.empty_like(buffer) for _ in range(spec.world)]
    torch.distributed.all_gather(out, buffer, group=spec.group)
    return out


__all__ = ["ShardSpec", "LocalState", "shard_spec", "check_grad", "local", "is_dtensor",
           "chunk_bounds", "all_gather"]

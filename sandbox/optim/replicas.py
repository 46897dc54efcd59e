"""Replica axes: the leading ``r`` axes of a tensor index independent copies of one parameter.

With ``replica_dims = r`` a tensor of shape ``(*R, *S)`` holds ``prod(R)`` independent replicas of a
parameter of shape ``S``; every reduction a rule takes is then per replica, so thousands of toy
trajectories (or K stacked copies of a net) run through the very same rule code as one tensor.
``r = 0`` is the ordinary single-replica case (``R = ()``).
"""
from __future__ import annotations

from torch import Tensor


def replica_shape(x: Tensor, rd: int) -> tuple[int, ...]:
    return tuple(x.shape[:rd])


def item_shape(x: Tensor, rd: int) -> tuple[int, ...]:
    """The shape of one replica."""
    return tuple(x.shape[rd:])


def per_replica_sum(x: Tensor, rd: int, dtype=None) -> Tensor:
    """Sum over the item axes: shape ``R`` (0-d when rd = 0)."""
    dims = tuple(range(rd, x.ndim))
    if not dims:
        return x if dtype is None else x.to(dtype)
    return x.sum(dim=dims, dtype=dtype)


def per_replica_numel(x: Tensor, rd: int) -> int:
    n = 1
    for s in x.shape[rd:]:
        n *= s
    return n


def broadcast_to_items(r: Tensor, x: Tensor, rd: int) -> Tensor:
    """Reshape a per-replica tensor (shape ``R``) so that it broadcasts against ``x`` (``(*R, *S)``)."""
    return r.reshape(replica_shape(x, rd) + (1,) * (x.ndim - rd))


def rows(x: Tensor, rd: int, view: str) -> Tensor:
    """AdamP's two views of a weight, per replica, as ``(*R, rows, row_length)``:

    - ``"channel"``: one row per output channel, ``x.reshape(x.shape[0], -1)`` in the paper;
    - ``"layer"``: the whole tensor as one row, ``x.reshape(1, -1)``.
    ``reshape`` (not ``view``) so that channels_last and other non-contiguous weights work.
    """
    R = replica_shape(x, rd)
    if view == "channel":
        return x.reshape(R + (x.shape[rd], -1))
    if view == "layer":
        return x.reshape(R + (1, -1))
    raise ValueError(f"unknown view {view!r}: expected 'channel' or 'layer'")

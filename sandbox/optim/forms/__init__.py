"""The forms a group's chain runs in, chosen per group and per step before anything is written.

1. **torch's kernels** (:mod:`.torch_kernels`) where the chain is exactly torch.optim's SGD, Adam
   or AdamW (checked on the stage objects);
2. **a fused kernel of the rule's paper family** (:mod:`.fused`, numba on the CPU) where the
   chain is one the kernel mirrors and the tensors qualify (CPU, float32/float64, contiguous,
   plain tensors);
3. **the stages** themselves, everywhere else (16-bit parameters without a torch kernel, CUDA,
   DTensor shards, non-contiguous layouts, rules without a kernel, ``impl='reference'``).

Reducing stages (Adai's global mean) keep their two sweeps across every group, whatever form
each group runs in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Optional

import torch
from torch import Tensor

from ..replicas import replica_shape
from ..stages import Context, Flow
from . import fused
from .adai_info import AdaiInfo
from .torch_kernels import torch_kind, torch_step

# last_info of a parameter stepped by torch's kernels: no stage recorded anything (shared, read-only)
NO_INFO = MappingProxyType({})


@dataclass
class GroupPlan:
    group: dict
    params: list
    chain: tuple
    form: str  # 'torch', 'kernel' or 'stages'
    kind: Optional[str] = None  # torch rule or kernel family
    kwargs: dict = field(default_factory=dict)
    reason: str = ""
    fast_form_exists: bool = False


def _plain(params) -> bool:
    return all(type(p.data) is Tensor for p in params)


def plan_group(opt, group: dict, params: Optional[list] = None, dry: bool = False) -> GroupPlan:
    """How ``group`` runs this step (``dry``: only whether a fast form exists for its chain)."""
    chain = opt._chain(group)
    kind = torch_kind(chain, group)
    family = fused.match(chain, group) if kind is None else None
    missing = family is not None and not fused.available(family[0])
    if missing:
        family = None
    plan = GroupPlan(group, params or [], chain, "stages",
                     fast_form_exists=kind is not None or family is not None)
    if dry:
        return plan
    if opt.impl == "reference":
        plan.reason = "impl='reference'"
    elif group.get("foreach") is False and group.get("fused") is False:
        plan.reason = "foreach=False and fused=False ask for the per-tensor stages"
    elif kind is not None:
        if _plain(params) and not any(p.is_complex() for p in params):
            plan.form, plan.kind = "torch", kind
        else:
            plan.reason = "torch's kernels take no tensor subclass (DTensor)"
    elif missing:
        plan.reason = "its fused kernel does not import here (is numba installed?)"
    elif family is None:
        plan.reason = (f"no fused form mirrors the chain "
                       f"{' → '.join(s.name for s in chain)}")
    elif fused.tensors_qualify(params, [opt.state[p] for p in params]):
        plan.form, plan.kind, plan.kwargs = "kernel", family[0], family[1]
    else:
        plan.reason = ("the fused kernel takes CPU float32/float64 contiguous plain tensors of one "
                       "dtype (with contiguous gradients and state)")
    return plan


def check_reducing(name: str, plans: list[GroupPlan]) -> None:
    """A reducing stage takes one mean over all parameters per replica: every parameter needs the
    same replica shape (checked before any write)."""
    shapes = {replica_shape(p, int(pl.group.get("replica_dims", 0)))
              for pl in plans if any(s.reduces for s in pl.chain) for p in pl.params}
    if len(shapes) > 1:
        raise ValueError(
            f"{name}: a reducing stage takes a mean over all parameters per replica, so every "
            f"parameter needs the same replica shape; got {sorted(shapes)} (replica_dims of the groups)")


def _accumulate(sums: dict, key: str, total: Tensor, count: int) -> None:
    if key not in sums:
        sums[key] = (total, count)
        return
    acc, n = sums[key]
    sums[key] = (acc + total.to(acc.dtype), n + count)


def run_plans(opt, plans: list[GroupPlan]) -> dict:
    """Run every group's form; returns ``last_info``."""
    infos: dict[Any, Any] = {}
    sums: dict[str, tuple] = {}
    pending: list = []
    for pl in plans:
        hp, params = pl.group, pl.params
        states = [opt.state[p] for p in params]
        rd = int(hp.get("replica_dims", 0))
        if pl.form == "torch":
            torch_step(pl.kind, params, states, hp, opt._dense_state,
                       prefer_foreach=hp.get("foreach") is True)
            infos.update(dict.fromkeys(params, NO_INFO))
        elif pl.form == "kernel" and pl.kind == "adai":
            total, count = fused.adai_reduce(pl.kwargs, params, states, rd)
            _accumulate(sums, "adaptive_inertia", total, count)
            pending.append(("kernel", pl, states, rd))
        elif pl.form == "kernel":
            codes = fused.run(pl.kind, pl.kwargs, params, states, rd)
            for i, p in enumerate(params):
                infos[p] = {"projection": codes[i]} if codes else {}
        else:
            _stages_sweep_one(pl, states, infos, sums, pending)
    means = {k: total / count for k, (total, count) in sums.items()}
    for item in pending:
        if item[0] == "kernel":
            _, pl, states, rd = item
            vbar = means["adaptive_inertia"]
            fused.adai_update(pl.kwargs, pl.params, states, rd, vbar)
            infos.update((p, AdaiInfo(st, vbar, pl.group, rd)) for p, st in zip(pl.params, states))
        else:
            _, ctx, stages, flow = item
            ctx.globals = means
            for stage in stages:
                flow = stage.apply(flow, ctx)
            ctx.param.add_(flow.u)
            infos[ctx.param] = ctx.info
    return infos


def _stages_sweep_one(pl: GroupPlan, states: list, infos: dict, sums: dict, pending: list) -> None:
    """The stages up to the first reducing one (and its reduce); the whole chain otherwise."""
    hp, stages = pl.group, pl.chain
    first_reducing = next((i for i, s in enumerate(stages) if s.reduces), len(stages))
    maximize = bool(hp.get("maximize", False))
    for p, st in zip(pl.params, states):
        g = -p.grad if maximize else p.grad
        ctx = Context(param=p, grad=g, state=st, hp=hp)
        flow = Flow(g)
        for stage in stages[:first_reducing]:
            flow = stage.apply(flow, ctx)
        if first_reducing == len(stages):  # no reducing stage: apply at once
            p.add_(flow.u)
            infos[p] = ctx.info
            continue
        red = stages[first_reducing]
        total, count = red.reduce(flow.u, ctx)
        _accumulate(sums, red.name, total, count)
        # the reducing stage's update runs in sweep 2, then the rest of the chain
        pending.append(("stages", ctx, stages[first_reducing:], flow))

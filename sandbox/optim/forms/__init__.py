"""The forms a group's chain runs in, chosen per group and per step before anything is written.

1. **torch's kernels** (:mod:`.torch_kernels`) where the chain is exactly torch.optim's SGD, Adam
   or AdamW (checked on the stage objects);
2. **a fused kernel of the rule's paper family** (:mod:`.fused`, numba on the CPU) where the
   chain is one the kernel mirrors and the tensors qualify (CPU, float32/float64, contiguous,
   plain tensors);
3. **the stages** themselves, everywhere else (16-bit parameters without a torch kernel, CUDA,
   DTensor shards, non-contiguous layouts, rules without a kernel, ``impl='reference'``), driven
   by :mod:`.rounds`: every parameter's chain runs on its local shard and their requests (the
   projection's verdict and sums, Adai's global mean) are reduced together, one round at a time
   (one collective per round under FSDP2).

Adai's global mean spans every group, whatever form each group runs in (the fused Adai kernel's
groups take part in the same global request).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Optional

import torch
from torch import Tensor

from ..distributed import LocalState, ShardSpec, local
from ..replicas import replica_shape
from ..stages import Context, Flow
from . import fused
from .adai_info import AdaiInfo
from .rounds import Gate, NonFiniteElsewhere, Task, chain_task, drive, fused_adai_task, gated_task, prepare_task, _global
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


_PLAIN_TYPES = frozenset({Tensor, torch.nn.Parameter})


def _plain(params) -> bool:
    """Plain tensors or parameters (a Parameter of a DTensor has a type of its own), real."""
    return set(map(type, params)) <= _PLAIN_TYPES and not any(map(Tensor.is_complex, params))


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
        if _plain(params):
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
    """A global statistic (Adai's mean) is taken per replica over all parameters: every parameter
    of a chain that requests one needs the same replica shape (checked before any write)."""
    shapes = {replica_shape(p, int(pl.group.get("replica_dims", 0)))
              for pl in plans if any(_global(s) for s in pl.chain) for p in pl.params}
    if len(shapes) > 1:
        raise ValueError(
            f"{name}: a reducing stage takes a mean over all parameters per replica, so every "
            f"parameter needs the same replica shape; got {sorted(shapes)} (replica_dims of the groups)")


def _run_fast(opt, pl: GroupPlan, infos: dict) -> None:
    """A group run by torch's kernels or a (non-reducing) fused kernel."""
    params, hp = pl.params, pl.group
    states = [opt.state[p] for p in params]
    if pl.form == "torch":
        torch_step(pl.kind, params, states, hp, opt._dense_state, prefer_foreach=hp.get("foreach") is True)
        infos.update(dict.fromkeys(params, NO_INFO))
        return
    codes = fused.run(pl.kind, pl.kwargs, params, states, int(hp.get("replica_dims", 0)))
    for i, p in enumerate(params):
        infos[p] = {"projection": codes[i]} if codes else {}


def run_plans(opt, plans: list[GroupPlan], shards: Optional[dict] = None, flag: Optional[bool] = None,
              comm: Optional[ShardSpec] = None, counter: Optional[list] = None) -> dict:
    """Run every group's form; returns ``last_info``.

    ``shards``: id(param) → :class:`~sandbox.optim.distributed.ShardSpec` of its DTensor parameters;
    ``comm``: the mesh of the sharded ones; ``flag``: this rank's gradients are finite, agreed on in
    the first round before anything is written (None: no agreement needed). Raises
    :class:`~sandbox.optim.forms.rounds.NonFiniteElsewhere` when some rank's flag is down."""
    infos: dict[Any, Any] = {}
    gate = Gate(flag is None)
    fast = [pl for pl in plans if pl.form == "torch" or (pl.form == "kernel" and pl.kind != "adai")]
    if gate.open:
        for pl in fast:
            _run_fast(opt, pl, infos)
        fast = []
    staged = [pl for pl in plans if pl.form == "stages" or (pl.form == "kernel" and pl.kind == "adai")]
    if not staged and not fast:
        return infos
    shards = shards or {}
    tasks: list[Task] = []
    for pl in fast:
        t = Task(None, 0, f"group of {len(pl.params)} parameters ({pl.kind})")
        t.gen = gated_task(t, lambda pl=pl: _run_fast(opt, pl, infos), gate)
        tasks.append(t)
    for pl in staged:
        hp = pl.group
        rd = int(hp.get("replica_dims", 0))
        states = [opt.state[p] for p in pl.params]
        if pl.form == "kernel":
            t = Task(None, rd, f"group of {len(pl.params)} parameters (fused adai)")
            t.gen = fused_adai_task(
                t, lambda pl=pl, states=states, rd=rd: fused.adai_reduce(pl.kwargs, pl.params, states, rd),
                lambda vbar, pl=pl, states=states, rd=rd: _adai_update(pl, states, rd, vbar, infos), gate)
            tasks.append(t)
            continue
        maximize = bool(hp.get("maximize", False))
        prepares = [s for s in pl.chain if s.prepare is not None]
        for p, st in zip(pl.params, states):
            spec = shards.get(id(p))
            if spec is None:
                lp, g, state = p, p.grad, st
            else:
                lp, g = local(p), local(p.grad)
                state = LocalState(st, p, lp)
            ctx = Context(param=lp, grad=-g if maximize else g, state=state, hp=hp, shape=p.shape)
            for s in prepares:
                t = Task(spec, rd, f"{s.name}.prepare of a parameter of shape {tuple(p.shape)}")
                t.gen = prepare_task(t, s, ctx)
                tasks.append(t)
            t = Task(spec, rd, f"the chain of a parameter of shape {tuple(p.shape)}")
            t.gen = chain_task(t, pl.chain, Flow(ctx.grad), ctx, gate, p, infos)
            tasks.append(t)
    drive(tasks, gate, flag, comm, counter)
    return infos


def _adai_update(pl: GroupPlan, states: list, rd: int, vbar, infos: dict) -> None:
    fused.adai_update(pl.kwargs, pl.params, states, rd, vbar)
    infos.update((p, AdaiInfo(st, vbar, pl.group, rd)) for p, st in zip(pl.params, states))

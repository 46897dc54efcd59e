"""The stage path: every parameter's chain run as a coroutine, their requests reduced in rounds.

Each parameter's chain (and each stage's ``prepare``) runs until it yields
:class:`~sandbox.optim.stages.Reduce` requests; once every chain has stopped, all pending requests
of all parameters are reduced together (a *round*) and the chains resume. So a step costs as many
rounds as the longest chain of dependent requests, not one per tensor: adamp/sgdp 1 (the
projection's verdict and its layer sums ride together), adai 1, adaip 2 (Adai's mean, then the
projection's ⟨w, d⟩); under FSDP2 each round is ONE collective (:func:`_exchange`): an
``all_gather`` of one packed float64 buffer, combined in rank order so that every rank gets
bit-identical values. One process (and DDP) runs the very same code with local reductions: one
implementation of each stage.

What a request means:

- ``scope='tensor'``: the whole tensor's value. A plain or replicated parameter's own value; a
  ``Shard(0)`` parameter's value is combined over the shards (sum or max, rank order). With
  replicas (``replica_dims`` ≥ 1) a shard holds whole replicas (dim 0 is a replica axis), so a
  per-replica value is already whole.
- ``scope='global'``: summed (or maxed) over every parameter that requests ``key``, each taken
  whole as above, in parameter order, per replica in the GLOBAL replica space (a shard's replicas
  placed at their offset along dim 0); each chain receives its replicas' part. It is served once
  every chain that may still request a global statistic waits on one (the old two sweeps).

A sharded step agrees on its gradients being finite in its first round (a flag rides on it):
before that round only stages that defer their writes run (``defers_writes``) and no parameter is
written, so a step refused for a non-finite gradient on any rank changes nothing on every rank.
Rules whose first request comes after a writing stage (adamp, sgdp, the root-free projected
rules) take one round more for it (2); adai/adaip do not (Adai's request precedes its writes);
rules without requests take the flag's round alone (1). ``nonfinite='ignore'`` drops the flag.
"""
from __future__ import annotations

import math
from types import GeneratorType
from typing import Any, Optional

import torch
from torch import Tensor

from ..distributed import ShardSpec, all_gather
from ..stages import Flow
from ..stages.adai import COUNT_KEY, SUM_KEY
from ..stages.base import OPS, SCOPES, Reduce, Stage, defers_writes, old_style_reducing, requests_of, scale_by_lr

GATE = object()  # a task waits for the step's first round before it may write
WAIT = object()  # a chain waits for a stage's prepare


class Gate:
    """Whether writes may begin (the first round, carrying the finite-gradient flag, is done)."""

    __slots__ = ("open",)

    def __init__(self, open_: bool):
        self.open = open_


class Task:
    """One coroutine: a parameter's chain, a stage's prepare, or a fused group."""

    __slots__ = ("gen", "spec", "rd", "stages", "pos", "reqs", "single", "send", "done",
                 "ctx", "what", "globals_left", "idx")

    def __init__(self, spec: Optional[ShardSpec], rd: int, what: str):
        self.spec, self.rd, self.what = spec, rd, what
        self.idx = 0
        self.stages: tuple = ()
        self.pos = 0
        self.reqs: list = []
        self.single = False
        self.send: Any = None
        self.done = False
        self.ctx = None
        self.gen = None
        self.globals_left = False  # a fused Adai group: before its request

    def may_request_global(self) -> bool:
        if self.globals_left:
            return True
        return any(_global(s) for s in self.stages[self.pos:])

    def ready(self) -> bool:  # a chain waiting for a prepare
        s = self.stages[self.pos]
        return s in self.ctx.prepared


def _global(stage: Stage) -> bool:
    if old_style_reducing(stage):
        return True
    return any(scope == "global" for _, scope in (stage.reductions or ()))


_ALLOWED: dict = {}  # id(stage) → (stage, the (op, scope) pairs it may request, or None)


def _allowed(stage: Stage) -> Optional[frozenset]:
    """What ``stage`` may request (None: undeclared, not checked)."""
    hit = _ALLOWED.get(id(stage))
    if hit is None or hit[0] is not stage:
        if old_style_reducing(stage):
            allowed = frozenset({("sum", "global")})
        else:
            allowed = None if stage.reductions is None else frozenset(tuple(r) for r in stage.reductions)
        hit = _ALLOWED[id(stage)] = (stage, allowed)
    return hit[1]


# --- the coroutines ------------------------------------------------------------------------------
def _old_reducing(stage: Stage, flow: Flow, ctx):
    """The old two-sweep protocol as one global request (sum and count, as it returns them)."""
    total, count = stage.reduce(flow.u, ctx)
    shape = tuple(total.shape)
    total, count = yield [Reduce("sum", "global", total, stage.name + ".sum"),
                          Reduce("sum", "global", torch.full(shape, float(count), dtype=torch.float64,
                                                             device=total.device), stage.name + ".count")]
    ctx.globals[stage.name] = total / count.to(total.dtype)
    return flow.with_u(stage.update(flow.u, ctx))


def chain_task(task: Task, stages: tuple, flow: Flow, ctx, gate: Gate, param: Tensor, infos: dict):
    """Run ``stages`` on one parameter; apply θ ← θ + u (its only write of θ) at the end."""
    task.stages, task.ctx = stages, ctx
    lr = ctx.hp.get("lr")
    fused_lr = bool(stages) and type(stages[-1]) is scale_by_lr and type(lr) in (int, float)
    for i, s in enumerate(stages[:-1] if fused_lr else stages):
        task.pos = i
        if not gate.open and not defers_writes(s):
            yield GATE
        if s.prepare is not None and not s.prepare_overlaps:
            while s not in ctx.prepared:
                yield WAIT
        if task.spec is not None and task.spec.sharded and s.reductions is None:
            flow = _on_dtensors(s, flow, ctx, param)  # an undeclared stage: DTensor semantics
            continue
        out = _old_reducing(s, flow, ctx) if old_style_reducing(s) else s.apply(flow, ctx)
        flow = (yield from out) if isinstance(out, GeneratorType) else out
        if not isinstance(flow, Flow):
            raise TypeError(f"stage {s.name!r} returned {type(flow).__name__} from apply; it must "
                            f"return a Flow (stages that only transform u implement update)")
    task.pos = len(stages)
    if not gate.open:
        yield GATE
    if fused_lr:  # scale_by_lr's u ← −lr·u and θ ← θ + u in one pass
        ctx.param.add_(flow.u, alpha=-lr)
    else:
        ctx.param.add_(flow.u)
    infos[param] = ctx.info


def _on_dtensors(stage: Stage, flow: Flow, ctx, param: Tensor) -> Flow:
    """Run a stage that declares no reductions on a sharded parameter the way it was written: on
    DTensors (the parameter, its gradient, its state, the direction), so that every statistic it
    takes spans the whole tensor by DTensor's own rules (one blocking collective per statistic,
    outside the rounds' batching). Exact, but not batched: declaring ``reductions`` (``()`` for an
    element-wise stage) puts it on the local path."""
    from torch.distributed.tensor import DTensor, Replicate

    mesh, placements = param.device_mesh, tuple(param.placements)
    per_replica = ctx.replica_dims > 0  # decay_scale: per replica (dim 0 sharded) or one number

    def wrap(x, like_param: bool):
        if type(x) is not Tensor:
            return x
        if like_param or per_replica:
            shape = torch.Size((param.shape[0],) + tuple(x.shape[1:]))
            return DTensor.from_local(x, mesh, placements, run_check=False, shape=shape,
                                      stride=torch.empty(shape, device="meta").stride())
        return DTensor.from_local(x, mesh, (Replicate(),), run_check=False)

    def unwrap(x, like_param: bool):
        if not isinstance(x, DTensor):
            return x
        want = placements if like_param or per_replica else (Replicate(),)
        if tuple(x.placements) != want:
            x = x.redistribute(mesh, want)
        return x.to_local()

    grad = -param.grad if ctx.hp.get("maximize", False) else param.grad
    dctx = type(ctx)(param=param, grad=grad, state=ctx.state.raw, hp=ctx.hp, globals=ctx.globals,
                     info=ctx.info, shape=param.shape, prepared=ctx.prepared)
    out = stage.apply(Flow(wrap(flow.u, True), wrap(flow.decay_scale, False), flow.buffer), dctx)
    if isinstance(out, GeneratorType):
        raise TypeError(f"stage {stage.name!r} yields requests but declares no reductions: declare "
                        f"them (its `reductions`)")
    return Flow(unwrap(out.u, True), unwrap(out.decay_scale, False), out.buffer)


def prepare_task(task: Task, stage: Stage, ctx):
    task.stages, task.ctx = (stage,), ctx
    out = stage.prepare(ctx)
    ctx.prepared[stage] = (yield from out) if isinstance(out, GeneratorType) else out
    task.pos = 1


def fused_adai_task(task: Task, run_reduce, run_update, gate: Gate):
    """A group run by the fused Adai kernel: its reduce, the global request, its update."""
    task.globals_left = True
    if not gate.open:
        yield GATE  # its reduce writes v and t
    total, count = run_reduce()
    count = torch.full(tuple(total.shape), float(count), dtype=torch.float64, device=total.device)
    total, count = yield [Reduce("sum", "global", total, SUM_KEY), Reduce("sum", "global", count, COUNT_KEY)]
    task.globals_left = False
    run_update(total / count.to(total.dtype))


def gated_task(task: Task, run, gate: Gate):
    """A group run by torch's or a fused kernel (no request): after the first round if one is due."""
    if not gate.open:
        yield GATE
    run()


# --- the driver ---------------------------------------------------------------------------------
class NonFiniteElsewhere(Exception):
    """The first round found a non-finite gradient on some rank (nothing was written)."""

    def __init__(self, ranks: list):
        super().__init__(ranks)
        self.ranks = ranks


def drive(tasks: list[Task], gate: Gate, flag: Optional[bool], comm: Optional[ShardSpec],
          counter: Optional[list] = None) -> None:
    """Run ``tasks`` to completion. ``flag`` (this rank's gradients are finite) rides on the first
    round when the gate is closed; ``comm`` is the mesh of the sharded parameters (None: local).
    Raises :class:`NonFiniteElsewhere` if some rank's flag is down."""
    for i, t in enumerate(tasks):
        t.idx = i
    runnable = list(tasks)
    parked: list[Task] = []
    waiting: list[Task] = []
    gated: list[Task] = []
    while True:
        while runnable:
            for t in runnable:
                try:
                    y = t.gen.send(t.send)
                except StopIteration:
                    t.done = True
                    continue
                t.send = None
                if y is GATE:
                    gated.append(t)
                elif y is WAIT:
                    waiting.append(t)
                else:
                    t.reqs, t.single = requests_of(y)
                    _check_requests(t)
                    parked.append(t)
            runnable = [t for t in waiting if t.ready()]
            if runnable:
                waiting = [t for t in waiting if not t.ready()]
        if not parked and not gated and not waiting:
            return
        live = [t for t in tasks if not t.done]
        globals_ok = all(t in parked and any(r.scope == "global" for r in t.reqs)
                         for t in live if t.may_request_global())
        serve = sorted((t for t in parked if globals_ok or all(r.scope == "tensor" for r in t.reqs)),
                       key=_IDX)
        first = not gate.open
        if not serve and not first:
            stuck = (parked + waiting + gated)[0]
            raise RuntimeError(f"the stage path is stuck: {stuck.what} waits on nothing that can come")
        down = _exchange(serve, flag if first else None, comm, counter)
        if first:
            if down:
                raise NonFiniteElsewhere(down)
            gate.open = True
            runnable, gated = gated, []
        serve_set = set(map(id, serve))
        parked = [t for t in parked if id(t) not in serve_set]
        runnable += serve
        # chains waiting for a prepare served in this round
        ready = [t for t in waiting if t.ready()]
        if ready:
            runnable += ready
            waiting = [t for t in waiting if not t.ready()]


def _IDX(t: Task) -> int:
    return t.idx


def _check_requests(t: Task) -> None:
    stage = t.stages[t.pos] if t.stages and t.pos < len(t.stages) else None
    allowed = _allowed(stage) if stage is not None else None
    for r in t.reqs:
        if r.op not in OPS or r.scope not in SCOPES:
            raise ValueError(f"{t.what}: a request with op={r.op!r}, scope={r.scope!r}; the core "
                             f"reduces ops {OPS} over scopes {SCOPES}")
        if stage is not None and allowed is not None and (r.op, r.scope) not in allowed:
            raise ValueError(f"{t.what}: stage {stage.name!r} requested ({r.op!r}, {r.scope!r}), "
                             f"which it does not declare in its reductions {sorted(allowed)}")
        if t.rd and t.ctx is not None and tuple(r.value.shape[:t.rd]) != tuple(t.ctx.param.shape[:t.rd]):
            raise ValueError(f"{t.what}: a request's value has shape {tuple(r.value.shape)}; its "
                             f"leading {t.rd} axes must be the replicas {tuple(t.ctx.param.shape[:t.rd])}")


def _identity(op: str) -> float:
    return 0.0 if op == "sum" else -math.inf


def _combine(op: str, parts) -> Tensor:
    acc = parts[0]
    for x in parts[1:]:
        acc = acc + x if op == "sum" else torch.maximum(acc, x)
    return acc


def _to_global(r: Reduce, spec: ShardSpec, rd: int) -> Tensor:
    """A shard's value in the global replica space (float64): dim 0 is a replica axis when rd ≥ 1."""
    v = r.value.to(torch.float64)
    out = torch.full((spec.size,) + tuple(v.shape[1:]), _identity(r.op), dtype=torch.float64, device=v.device)
    out[spec.start:spec.start + spec.length] = v
    return out


def _mesh_device(comm: ShardSpec) -> torch.device:
    """Where the mesh's collectives take their tensors (NCCL: the current GPU)."""
    kind = comm.mesh.device_type
    if kind == "cpu":
        return torch.device("cpu")
    module = getattr(torch, kind, None)
    return torch.device(kind, module.current_device()) if module is not None else torch.device(kind)


def _exchange(serve: list[Task], flag: Optional[bool], comm: Optional[ShardSpec],
              counter: Optional[list]) -> list:
    """Reduce every request of the tasks in ``serve``; returns the ranks whose flag is down."""
    # 1. each request's whole-tensor value: the value itself, or combined over the shards
    whole: dict[tuple, Tensor] = {}
    crossing: dict[str, list] = {"sum": [], "max": []}  # (task, index, request, global-space value)
    for t in serve:
        for i, r in enumerate(t.reqs):
            spec = t.spec
            if spec is not None and spec.sharded and (t.rd == 0 or r.scope == "global"):
                crossing[r.op].append((t, i, r, r.value if t.rd == 0 else _to_global(r, spec, t.rd)))
            else:
                whole[id(t), i] = r.value
    down: list = []
    entries = crossing["sum"] + crossing["max"]
    if comm is not None and (entries or flag is not None):
        # one buffer: [flag, the sums…, the maxima…] (float64, exact for every float dtype)
        device = entries[0][3].device if entries else _mesh_device(comm)
        head = torch.tensor([1.0 if flag is not False else 0.0], dtype=torch.float64, device=device)
        buffer = torch.cat([head] + [g.reshape(-1) for *_, g in entries]).to(torch.float64)
        parts = all_gather(buffer, comm)
        if counter is not None:
            counter[0] += 1
        gathered = torch.stack(parts)  # (ranks, n)
        if flag is not None:
            down = [comm.ranks[k] for k, f in enumerate(gathered[:, 0].tolist()) if f != 1.0]
        n_sum = sum(g.numel() for *_, g in crossing["sum"])
        # rank order, element by element (every rank computes the same bits)
        combined = torch.cat([_combine("sum", gathered[:, 1:1 + n_sum].unbind(0)),
                              _combine("max", gathered[:, 1 + n_sum:].unbind(0))])
        pos = 0
        for t, i, r, g in entries:
            n = g.numel()
            # (a global value of a replicated shard stays in the global replica space: cut back below)
            whole[id(t), i] = combined[pos:pos + n].reshape(g.shape).to(r.value.dtype)
            pos += n
    # 2. global statistics: every contribution, in task order, summed (or maxed) at once in the
    #    first contribution's dtype
    parts: dict[str, list] = {}
    ops: dict[str, str] = {}
    for t in serve:
        for i, r in enumerate(t.reqs):
            if r.scope != "global":
                continue
            v = whole[id(t), i]
            if r.key in parts:
                first = parts[r.key][0]
                if ops[r.key] != r.op or first.shape != v.shape:
                    raise ValueError(f"global statistic {r.key!r} requested with different ops or "
                                     f"replica shapes ({ops[r.key]} {tuple(first.shape)}, "
                                     f"{r.op} {tuple(v.shape)})")
                parts[r.key].append(v if v.dtype == first.dtype else v.to(first.dtype))
            else:
                parts[r.key], ops[r.key] = [v], r.op
    totals = {k: (vs[0] if len(vs) == 1 else
                  torch.stack(vs).sum(0) if ops[k] == "sum" else torch.stack(vs).amax(0))
              for k, vs in parts.items()}
    # 3. hand the values back
    for t in serve:
        out = []
        for i, r in enumerate(t.reqs):
            if r.scope == "tensor":
                out.append(whole[id(t), i])
                continue
            v = totals[r.key]
            if t.rd and t.spec is not None and t.spec.sharded:
                v = v[t.spec.start:t.spec.start + t.spec.length]
            out.append(v.to(r.value.dtype))
        t.send = out[0] if t.single else out
    return down


def agree(flag: bool, comm: ShardSpec) -> list:
    """A round of the flag alone (one collective): the ranks whose gradients are not finite."""
    return _exchange([], flag, comm, None)

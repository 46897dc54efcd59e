"""The fast path of :class:`sandbox.optim.optimizer.RuleOptimizer`: same chains, list kernels.

For every param group the executor either hands the group to torch's own kernels (chains that are
exactly torch.optim.SGD/Adam/AdamW, :mod:`sandbox.optim.fast.torch_dispatch`) or runs the group's chain
of stages chunk by chunk through the stages' list forms (:mod:`sandbox.optim.fast.stage_forms`,
:mod:`sandbox.optim.fast.projection_form`), with the reference's two-sweep protocol for reducing stages
(Adai's global mean over every parameter of every group). It is chosen per step and only when
every parameter qualifies (:meth:`FastExecutor.unsupported`), before anything is touched, so a
fallback to the reference never sees a half-made step.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType
from typing import Callable

import torch
from torch import Tensor

from ..stages import (
    adaptive_inertia, add_decayed_weights, heavy_ball, precondition_rootfree, radial_projection,
    scale_by_adam, scale_by_lr, scale_by_rootfree_adam,
)
from . import stage_forms as F
from .direction import Direction
from .plan import Workspace, build_chunks
from .projection_form import projection
from .torch_dispatch import torch_kind, torch_step

FORMS: dict[type, Callable] = {
    add_decayed_weights: F.decayed_weights, scale_by_lr: F.lr_scale, heavy_ball: F.momentum,
    scale_by_adam: F.adam, scale_by_rootfree_adam: F.rootfree_adam,
    precondition_rootfree: F.rootfree_precondition, radial_projection: projection,
}
REDUCE_FORMS: dict[type, tuple[Callable, Callable]] = {
    adaptive_inertia: (F.inertia_reduce, F.inertia_update),
}
MIN_BUDGET = 1 << 18  # elements: small tensors are batched into chunks of up to this size
MAX_PLANS = 8
_PENDING = object()


# last_info of a parameter stepped by torch's kernels: no stage recorded anything (shared, read-only)
NO_INFO = MappingProxyType({})


class StepInfo(Mapping):
    """``last_info`` of a fast step: the :class:`Info` of every parameter a stage chain stepped,
    and :data:`NO_INFO` for every parameter torch's kernels stepped. That part of the mapping is
    built on first use: hashing 1000s of tensors each step would cost more than a small step."""

    def __init__(self, infos: dict, plain: list):
        self._infos, self._plain, self._all = infos, plain, None

    def _mapping(self) -> dict:
        if self._all is None:
            self._all = dict.fromkeys(self._plain, NO_INFO)
            self._all.update(self._infos)
        return self._all

    def __getitem__(self, p):
        return self._mapping()[p]

    def __iter__(self):
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())


class Info(dict):
    """One parameter's diagnostics (``last_info[p]``); some entries are computed on first access
    from the state the step left (Adai's per-element β1), which saves a whole-model temporary.
    Reading such an entry after a later step raises instead of returning the wrong step's value."""

    _lazy: dict | None = None

    def set_lazy(self, key: str, thunk: Callable, opt, token: int) -> None:
        if self._lazy is None:
            self._lazy = {}
        self._lazy[key] = (thunk, opt, token)
        dict.__setitem__(self, key, _PENDING)

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        if value is _PENDING:
            thunk, opt, token = self._lazy.pop(key)
            if opt._step_calls != token:
                raise RuntimeError(
                    f"last_info[...][{key!r}] of an earlier step is gone: the fast path computes it "
                    f"from the state on first access; read it right after that step() or create "
                    f"the optimizer with impl='reference'")
            value = thunk()
            dict.__setitem__(self, key, value)
        return value

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: " + ("<computed on access>" if dict.__getitem__(self, k) is _PENDING
                                          else repr(dict.__getitem__(self, k))) for k in self.keys()) + "}"

    def get(self, key, default=None):
        return self[key] if key in self else default

    def items(self):
        return [(k, self[k]) for k in self.keys()]

    def values(self):
        return [self[k] for k in self.keys()]


def _numbers(group: dict) -> dict:
    """The group with 0-d tensor hyperparameters (torch allows e.g. ``lr=torch.tensor(0.01)``;
    validation accepts them) as Python floats: the list forms fold hyperparameters into per-tensor
    coefficients and take a tensor coefficient for a per-row vector."""
    def number(v):
        if isinstance(v, Tensor) and v.dim() == 0:
            return float(v)
        if isinstance(v, tuple) and any(isinstance(x, Tensor) for x in v):
            return tuple(number(x) for x in v)
        return v

    return {k: number(v) for k, v in group.items()}


class FastExecutor:
    def __init__(self, opt):
        self.opt = opt
        self.workspace = Workspace()
        self._plans: OrderedDict = OrderedDict()
        self._version = 0
        self.verified: set[int] = set()  # ids of parameters whose state was checked (see reset)
        self.dense_state: set[int] = set()  # torch's kernels: parameters with contiguous state
        self._budget = None

    def nbytes(self) -> int:
        """Memory kept between steps that is not state: the scratch workspace and the chunks'
        per-row buffers."""
        seen, total = set(), self.workspace.nbytes()

        def walk(x):
            nonlocal total
            if isinstance(x, Tensor):
                if x._base is None and id(x) not in seen:
                    seen.add(id(x))
                    total += x.numel() * x.element_size()
            elif isinstance(x, (list, tuple)):
                for y in x:
                    walk(y)

        for chunks in self._plans.values():
            for c in chunks:  # the scratch views are the workspace, counted above
                walk([v for k, v in c.cache.items() if k != "scratch"])
        return total

    def reset(self) -> None:
        """Forget cached checks and plans: after ``load_state_dict``, and when a parameter changed
        dtype, device or shape (the optimizer detects that per step and casts the state first).
        Plans, the workspace budget, ``verified`` and ``dense_state`` hold only for the shapes,
        dtypes and devices they were made for."""
        self.verified.clear()
        self.dense_state.clear()
        self._plans.clear()
        self._budget = None

    # --- eligibility -----------------------------------------------------------------------------
    def _torch_kinds(self) -> dict:
        """``{id(group): torch_kind or None}`` for every param group, taken once per step. A
        group whose chain is exactly one of torch's rules runs on its kernels, which check their
        own inputs and need no workspace."""
        return {id(g): torch_kind(self.opt._chain(g), g) for g in self.opt.param_groups}

    def unsupported(self, work: list[tuple[dict, Tensor]]) -> str | None:
        """Why this step cannot take the fast path (None when it can). Touches nothing.
        State tensors are checked once per parameter (again after ``load_state_dict``)."""
        kinds = self._torch_kinds()
        if None not in kinds.values():  # torch's kernels only: nothing to check
            return None
        seen: dict = {}  # group -> None (torch's kernels: they check their inputs) or full-precision flag
        for group, p in work:
            if id(group) not in seen:
                if kinds[id(group)] is not None:
                    seen[id(group)] = None
                    continue
                stages = self.opt._chain(group)
                seen[id(group)] = any(getattr(s, "FULL_PRECISION_STATE", ()) for s in stages)
                for s in stages:
                    if type(s) not in FORMS and type(s) not in REDUCE_FORMS:
                        return f"stage {s.name} has no list form"
            if seen[id(group)] is None:
                continue
            g = p.grad
            if g.dtype is not p.dtype or g.get_device() != p.get_device():
                return f"a gradient of dtype {g.dtype} on {g.device} for a {p.dtype} parameter on {p.device}"
            if not (p.is_contiguous() and g.is_contiguous()):
                return f"non-contiguous parameter or gradient (shape {tuple(p.shape)})"
            if id(p) in self.verified:
                continue
            if seen[id(group)] and p.dtype.itemsize <= 2:
                return f"{p.dtype} parameters of a stage that keeps float32 state"
            if p.device.type not in ("cpu", "cuda"):
                return f"device {p.device} (cpu and cuda only)"
            if not p.is_floating_point():
                return f"parameter of dtype {p.dtype} (floating point only)"
            for v in self.opt.state[p].values():
                if isinstance(v, Tensor) and v.dim() > 0 and not (
                        v.is_contiguous() and v.dtype == p.dtype and v.device == p.device):
                    return f"state tensor of shape {tuple(v.shape)} not contiguous or not like its parameter"
        return None

    # --- plans -------------------------------------------------------------------------------------
    def _chunks(self, gi: int, group: dict, params: list[Tensor], budget: dict) -> list:
        """The group's chunks, cached. A plan depends on the parameters (which, and their
        shapes, dtypes and devices: fixed for a plan, since the optimizer calls :meth:`reset` when
        a parameter's dtype, device or shape changes), on the workspace (``_version``) and, of the
        group's settings, only on ``replica_dims`` (the rows, segments and replica shapes). The
        stage chain and every hyperparameter (``project``, ``delta``, eps keys, ...) are read at
        each step, and the projection's thresholds are cached per ``delta``."""
        rd = int(group.get("replica_dims", 0))
        key = (gi, rd, tuple(id(p) for p in params), self._version)
        if key in self._plans:
            self._plans.move_to_end(key)
            return self._plans[key]
        runs: OrderedDict = OrderedDict()
        for p in params:
            runs.setdefault((p.dtype, p.device), []).append(p)
        chunks = []
        for (dtype, device), ps in runs.items():
            chunks += build_chunks(ps, rd, budget[(dtype, device)], self.workspace)
        self._plans[key] = chunks
        while len(self._plans) > MAX_PLANS:
            self._plans.popitem(last=False)
        return chunks

    def _reserve(self, work, kinds: dict) -> dict:
        """Grow the workspace to the largest tensor stepped by a stage chain (not by torch);
        ``kinds`` from :meth:`_torch_kinds`."""
        if None not in kinds.values():
            return {}
        # keyed on each group's chain too: a structural change (e.g. project=True) can move a
        # group from torch's kernels to the list forms, which then need workspace
        chains = {id(g): id(self.opt._chain(g)) for g in self.opt.param_groups}
        key = (tuple((id(p), chains[id(g)]) for g, p in work), self._version)
        if self._budget is not None and self._budget[0] == key:
            return self._budget[1]
        budget: dict = {}
        for group, p in work:
            if kinds[id(group)] is not None:
                continue
            k = (p.dtype, p.device)
            budget[k] = max(budget.get(k, MIN_BUDGET), p.numel())
        grew = [self.workspace.reserve(k[0], k[1], n) for k, n in budget.items()]
        if any(grew):
            self._version += 1
            self._plans.clear()
        out = {k: self.workspace.capacity(*k) for k in budget}
        self._budget = ((key[0], self._version), out)
        return out

    # --- the step ----------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, work: list[tuple[dict, Tensor]]) -> None:
        opt = self.opt
        kinds = self._torch_kinds()
        budget = self._reserve(work, kinds)
        groups: OrderedDict = OrderedDict()
        if len(opt.param_groups) == 1:  # the common case, without a Python loop over the tensors
            groups[id(work[0][0])] = (work[0][0], [p for _, p in work])
        else:
            for group, p in work:
                groups.setdefault(id(group), (group, []))[1].append(p)
        index = {id(g): i for i, g in enumerate(opt.param_groups)}
        info: dict = {}
        plain: list = []  # parameters stepped by torch's kernels: no diagnostics
        pending, sums = [], {}
        for gid, (group, params) in groups.items():
            stages = opt._chain(group)
            kind = kinds[gid]
            if kind is not None:
                torch_step(kind, params, [opt.state[p] for p in params], group, self.dense_state)
                plain += params
                continue
            rd, hp = int(group.get("replica_dims", 0)), _numbers(group)
            for chunk in self._chunks(index[gid], group, params, budget):
                fc = F.FastContext(
                    chunk=chunk, grads=[p.grad for p in chunk.params],
                    states=[opt.state[p] for p in chunk.params], hp=hp, rd=rd,
                    infos=[Info() for _ in chunk.params], lazy_info=self._lazy)
                info.update(zip(chunk.params, fc.infos))
                d, i = Direction.plain(fc.grads), 0
                while i < len(stages) and not stages[i].reduces:
                    d = FORMS[type(stages[i])](stages[i], d, fc)
                    i += 1
                if i == len(stages):
                    d.apply(chunk)
                    continue
                reduce_form = REDUCE_FORMS[type(stages[i])][0]
                for (total, count), p in zip(reduce_form(stages[i], d, fc), chunk.params):
                    opt._accumulate(sums, stages[i].name, total, count, p, rd)
                pending.append((fc, stages, i, d))
        means = {name: total / count for name, (total, count, _) in sums.items()}
        for fc, stages, i, d in pending:
            fc.globals = means
            d = REDUCE_FORMS[type(stages[i])][1](stages[i], d, fc)
            for stage in stages[i + 1:]:
                d = FORMS[type(stage)](stage, d, fc)
            d.apply(fc.chunk)
        opt.last_info = StepInfo(info, plain) if plain else info
        # only parameters whose state the list forms checked (torch's kernels check nothing)
        for gid, (group, params) in groups.items():
            if kinds[gid] is None:
                self.verified.update(map(id, params))

    def _lazy(self, info: Info, key: str, thunk: Callable) -> None:
        info.set_lazy(key, thunk, self.opt, self.opt._step_calls)

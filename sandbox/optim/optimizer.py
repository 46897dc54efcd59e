"""A thin ``torch.optim.Optimizer`` that runs any registered rule.

The optimizer only checks, loops over parameter groups, keeps the state, and applies
``θ ← θ + u`` once per parameter at the end of the chain; all the math lives in the stages
(:mod:`sandbox.optim.stages`). Per group it runs one of three forms of the same chain
(:mod:`sandbox.optim.forms`): torch's own kernels where the chain is exactly torch's rule, a
fused kernel of the rule's paper family, or the stages themselves.
"""
from __future__ import annotations

import operator
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from . import checks
from .distributed import ShardSpec, check_grad, is_dtensor as shards_of, local, shard_spec
from .forms import NO_INFO, GroupPlan, check_reducing, plan_group, run_plans
from .forms.rounds import NonFiniteElsewhere, agree
from .registry import _REGISTRY, RuleSpec

NONFINITE = ("raise", "skip", "ignore")
IMPLS = ("auto", "fast", "reference")


class NonFiniteGradientError(FloatingPointError):
    """A gradient holds NaN or Inf; the step was refused and nothing was changed."""


_DTYPE, _DEVICE, _SHAPE = (operator.attrgetter(a) for a in ("dtype", "device", "shape"))
_GRAD, _IS_SPARSE = operator.attrgetter("grad"), operator.attrgetter("is_sparse")
_SKIP_KEYS = ("params", "param_names")
_PLAIN = {Tensor, torch.nn.Parameter}  # parameter types that are never sharded


class RuleOptimizer(torch.optim.Optimizer):
    """Runs ``rule`` (a :class:`~sandbox.optim.registry.RuleSpec`) as a drop-in torch optimizer.

    Behaviour shared by every rule:
    - several param groups with their own hyperparameters (validated like the constructor's),
      LR schedulers, closures; parameters whose ``grad`` is None are skipped; ``p.grad`` is never
      modified; zero-size, non-contiguous and channels_last parameters work; the math runs in the
      parameter's dtype (reductions of reducing stages in at least float32).
    - torch.optim's options: ``maximize`` (every rule: the rule follows −g), ``amsgrad`` (rules
      with Adam's moments), ``foreach``/``fused`` (hints: ``fused=True`` refuses a rule without a
      fused form; both False run the stages), ``capturable``/``differentiable`` (refused by name).
    - a step either completes for every parameter or changes nothing: gradients, parameters
      (complex ones are refused: step ``torch.view_as_real(p)``), every state tensor (shape,
      layout, dtype, device, the keys the rule needs) and hyperparameters that overflow the
      parameters' dtype are checked before the first write (:mod:`sandbox.optim.checks`).
    - ``nonfinite``: ``'raise'`` (default) refuses a step whose gradients hold NaN/Inf with a
      :class:`NonFiniteGradientError` and changes nothing; ``'skip'`` skips such a step (counted in
      ``skipped_steps``), changing nothing; ``'ignore'`` does no check. The check costs one host
      synchronisation per step (not per tensor); 'ignore' removes it.
    - ``last_info`` maps each stepped parameter to the diagnostics its stages recorded at the last
      step (e.g. ``'projection'``: 0 none, 1 channel view, 2 layer view, per replica).
    - ``impl``: ``'reference'`` runs the stages; ``'auto'`` (default) runs, per group, torch's
      kernels or the family's fused kernel where one mirrors the chain and the tensors qualify, the
      stages elsewhere; ``'fast'`` raises ``NotImplementedError`` where no such form applies.
      ``last_impl`` says what ran ('fast', 'reference' or 'mixed'). The forms are tested equal in
      float64 and their state dicts are interchangeable.
    - sharded parameters (FSDP2's ``fully_shard``: DTensors ``Shard(0)`` on a 1-D mesh, uneven or
      empty shards included; ``Replicate()``): the stages run on the local shards, the state stays
      DTensors sharded like the parameters (``torch.distributed.checkpoint`` saves and loads it),
      and every statistic that spans a tensor or all parameters is reduced across the ranks in a
      bounded number of rounds of ONE collective each per step (``last_collectives``), the first
      of which also agrees on the gradients being finite (``nonfinite``: every rank raises or skips
      together, nothing written). Other placements, and stages that do not declare their
      reductions, are refused at the first step, naming the parameter and the placement. Plain
      tensors (DDP, one process) take no collective.
    - a parameter whose dtype or device changed after its state was made (``model.double()``,
      ``model.to('cuda')`` mid-run) takes its state along at its next step: every floating state
      tensor except the ``step`` counters is cast to the parameter's dtype and moved to its
      device, as torch.optim's ``load_state_dict`` casts a checkpoint's state. State a stage keeps
      in full precision for 16-bit parameters (Adai's ``beta1_prod``) becomes float32 for 16-bit
      parameters. A parameter resized after its state was made is refused (its state no longer
      fits it). A step refused for non-finite gradients casts nothing.
    """

    def __init__(self, params, rule: RuleSpec, nonfinite: str = "raise", impl: str = "auto",
                 **hyperparams: Any):
        if nonfinite not in NONFINITE:
            raise ValueError(f"invalid nonfinite={nonfinite!r}: must be one of {NONFINITE}")
        if impl not in IMPLS:
            raise ValueError(f"invalid impl={impl!r}: must be one of {IMPLS}")
        rule.validate(hyperparams)
        self.rule = rule
        self.nonfinite = nonfinite
        self.impl = impl
        self.last_impl: Optional[str] = None
        self.last_collectives = 0  # collectives the last step took (sharded parameters)
        self._step_calls = 0
        self.skipped_steps = 0
        self.last_info: dict = {}
        self._reset_caches()
        defaults = {**rule.defaults, **hyperparams, "replica_dims": 0}
        super().__init__(params, defaults)

    def _reset_caches(self) -> None:
        self._chains: dict[tuple, tuple] = {}
        self._layouts: dict[int, tuple] = {}  # id(param) -> (dtype, device, shape) at its last step
        self._layout_sig = None  # (ids, dtypes, devices, shapes) of the last step's parameters
        self._checked_state: dict = {}  # id(param) -> ids of its state tensors when last checked
        self._dense_state: set = set()  # torch kernels: params whose state was found dense
        self._shards: dict[int, tuple] = {}  # id(param) -> (layout key, ShardSpec) of DTensors
        self._checked_chains: set = set()  # ids of chains whose declared reductions were checked

    def add_param_group(self, param_group: dict) -> None:
        """torch's, validated; a group that fails any check leaves the optimizer as it was."""
        self.rule.validate({k: v for k, v in param_group.items() if k not in _SKIP_KEYS})
        n = len(self.param_groups)
        try:
            super().add_param_group(param_group)
            group = self.param_groups[-1]
            self.rule.validate({k: v for k, v in group.items() if k not in _SKIP_KEYS})
            for pi, p in enumerate(group["params"]):
                checks.check_parameter(self.rule.name, p, n, pi)
            self._check_fused_hint(group)
        except BaseException:
            del self.param_groups[n:]
            raise

    def _check_fused_hint(self, group: dict) -> None:
        if group.get("fused") and not plan_group(self, group, dry=True).fast_form_exists:
            raise ValueError(
                f"{self.rule.name}: fused=True, but this rule's chain "
                f"({' → '.join(s.name for s in self._chain(group))}) has no fused form; allowed: "
                f"fused=None or False (the stages run)")

    # torch.optim pickles (and deep-copies) only defaults, state and param_groups; the rule and
    # the options live outside them. Caches are rebuilt; a registered rule travels by name.
    _KEPT = ("rule", "nonfinite", "impl", "last_impl", "_step_calls", "skipped_steps")

    def __getstate__(self) -> dict:
        state = {**super().__getstate__(), **{k: self.__dict__[k] for k in self._KEPT}}
        if _REGISTRY.get(self.rule.name) is self.rule:
            state["rule"] = self.rule.name
        return state

    def __setstate__(self, state: dict) -> None:
        # also called by torch's load_state_dict with only 'state' and 'param_groups'
        super().__setstate__(state)
        # torch adds 'differentiable' to the defaults: keep the rule's own value
        self.defaults["differentiable"] = False
        self._reset_caches()
        if "rule" in state:
            self.rule = _REGISTRY[state["rule"]] if isinstance(state["rule"], str) else state["rule"]
            self.last_info = {}

    def load_state_dict(self, state_dict: dict) -> None:
        """torch.optim's loader, with checks: every group's hyperparameters are validated (a
        torch.optim checkpoint carrying an option this rule does not implement, e.g.
        ``capturable=True`` or Adam's ``decoupled_weight_decay`` into the other rule, is refused),
        and every state tensor must fit its parameter (:func:`checks.check_state`); a numeric
        ``step`` is converted as torch does. On any refusal the optimizer is left as it was.
        State a stage keeps in full precision for 16-bit parameters (Adai's ``beta1_prod``) stays
        float32. Hyperparameters the saved groups lack keep their current values."""
        checks.check_saved_groups(self.rule, state_dict, _SKIP_KEYS)
        saved_state, saved_groups = self.state, self.param_groups
        current = [dict(g) for g in self.param_groups]
        super().load_state_dict(state_dict)
        try:
            for group, old in zip(self.param_groups, current):
                for k, v in old.items():
                    group.setdefault(k, v)
            self._keep_full_precision(state_dict)
            for gi, group in enumerate(self.param_groups):
                required = checks.required_state(self._chain(group), group)
                for pi, p in enumerate(group["params"]):
                    st = self.state.get(p)
                    if st:
                        checks.normalise_step(st)
                        checks.check_state(self.rule.name, p, st, required, gi, pi)
        except BaseException:
            self.state, self.param_groups = saved_state, saved_groups
            raise
        finally:
            self._reset_caches()

    def _keep_full_precision(self, state_dict: dict) -> None:
        keys = {k for s in self.rule.stages(self.defaults) for k in s.FULL_PRECISION_STATE}
        if not keys:
            return
        ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        for i, p in zip(ids, params):
            saved = state_dict["state"].get(i, {})
            for k in keys & saved.keys():
                self.state[p][k] = saved[k].to(device=p.device, dtype=self.state[p][k].dtype
                                               if p.dtype.itemsize > 2 else torch.float32).clone()

    def __repr__(self) -> str:
        return f"{self.rule.name} " + super().__repr__()

    def _chain(self, group: dict) -> tuple:
        key = self.rule.chain_key(group)
        if key not in self._chains:
            self._chains[key] = self.rule.build(group)
        return self._chains[key]

    # --- checks before the first write --------------------------------------------------------
    def _shard_specs(self, groups: list) -> tuple[dict, Optional[ShardSpec]]:
        """The layout of every DTensor parameter (id → ShardSpec) and the mesh of the sharded ones;
        refuses a placement, gradient layout or chain that cannot be made exact (before writes)."""
        specs: dict[int, ShardSpec] = {}
        comm: Optional[ShardSpec] = None
        cache = self._shards
        for gi, group, params, idx in groups:
            chain = None
            for p, pi in zip(params, idx):
                if type(p.data) is Tensor:
                    continue
                lp = local(p)
                key = (id(p.device_mesh), tuple(p.placements), p.shape, lp.shape) \
                    if hasattr(p, "placements") else None
                hit = cache.get(id(p))
                if hit is not None and hit[0] == key:
                    spec = hit[1]
                else:
                    spec = shard_spec(p, f"{self.rule.name}: {checks.where(gi, pi, p)}")
                    if spec is None:
                        continue
                    cache[id(p)] = (key, spec)
                check_grad(p, spec, lambda: f"{self.rule.name}: {checks.where(gi, pi, p)}")
                specs[id(p)] = spec
                if not spec.sharded:
                    continue
                if chain is None:
                    chain = self._chain(group)
                    checks.check_sharded_chain(self.rule.name, chain, p, spec, gi, pi)
                if comm is None:
                    comm = spec
                elif spec.ranks != comm.ranks:
                    raise ValueError(
                        f"{self.rule.name}: {checks.where(gi, pi, p)} is sharded over ranks "
                        f"{spec.ranks}, another sharded parameter over {comm.ranks}; the optimizer "
                        f"reduces over one mesh: give it the parameters of one mesh")
        return specs, comm

    def _check_before_writes(self, groups: list) -> None:
        """Parameters, gradients, state and hyperparameters of every group (see the class doc).
        Gradients are compared with their parameters in C-level maps at every step; a parameter's
        state is checked whole when it is new or any of its tensors was replaced or added since
        its last check (a wrong shape would be written out of bounds by a kernel)."""
        name = self.rule.name
        checked = self._checked_state
        for gi, group, params, idx in groups:
            checks.check_hyper_range(name, group, params[0].dtype, gi)
            chain = self._chain(group)
            if id(chain) not in self._checked_chains:
                checks.check_reductions(name, chain, f"{checks.where(gi, idx[0], params[0])}, "
                                                     f"{'a DTensor' if shards_of(params[0]) else 'a plain tensor'}")
                self._checked_chains.add(id(chain))
            grads = list(map(_GRAD, params))
            if (list(map(_SHAPE, grads)) != list(map(_SHAPE, params))
                    or list(map(_DTYPE, grads)) != list(map(_DTYPE, params))
                    or list(map(_DEVICE, grads)) != list(map(_DEVICE, params))):
                for p, g, pi in zip(params, grads, idx):
                    if g.shape != p.shape or g.dtype != p.dtype or g.device != p.device:
                        raise ValueError(
                            f"{name}: the gradient of {checks.where(gi, pi, p)} has shape "
                            f"{tuple(g.shape)}, {g.dtype} on {g.device}; it must match the parameter")
            required, get = None, self.state.get
            for p, pi in zip(params, idx):
                st = get(p)
                # a state checked whole keeps its tensors (a tensor's shape does not change in
                # place): only a resized parameter, or a state whose tensors were replaced or
                # added since, is checked again
                if not st or (p.shape, *map(id, st.values())) == checked.get(id(p)):
                    continue
                if required is None:
                    required = checks.required_state(chain, group)
                checks.check_parameter(name, p, gi, pi)
                checks.normalise_step(st)
                checks.check_state(name, p, st, required, gi, pi)
                checked[id(p)] = (p.shape, *map(id, st.values()))

    # --- the step ------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        groups = []
        for gi, group in enumerate(self.param_groups):
            idx = [i for i, p in enumerate(group["params"]) if p.grad is not None]
            if idx:
                groups.append((gi, group, [group["params"][i] for i in idx], idx))
        grads = [p.grad for _, _, ps, _ in groups for p in ps]
        if any(map(_IS_SPARSE, grads)):
            raise RuntimeError(f"{self.rule.name} does not support sparse gradients")
        shards, comm = ({}, None) if set(map(type, (p for _, _, ps, _ in groups for p in ps))) <= _PLAIN \
            else self._shard_specs(groups)
        if shards:
            grads = [local(g) for g in grads]
        # sharded: each rank sees its shards only; the ranks agree in the step's first round
        flag = None
        if comm is not None and self.nonfinite != "ignore":
            flag = checks.grads_finite(grads, self.nonfinite)
        elif not checks.grads_finite(grads, self.nonfinite):
            if self.nonfinite == "raise":
                raise NonFiniteGradientError(checks.nonfinite_message(self.rule.name, self.param_groups))
            self.skipped_steps += 1
            return loss
        self._check_before_writes(groups)
        if flag is not None and self._casts_pending(groups):
            # casting state is a write: agree first (one more collective, in such a step only)
            down = agree(flag, comm)
            if down:
                return self._refuse(down, loss)
            flag = None
        self._follow_params(groups)
        plans: list[GroupPlan] = [plan_group(self, group, ps) for _, group, ps, _ in groups]
        check_reducing(self.rule.name, plans)
        if self.impl == "fast":
            slow = [p for p in plans if p.form == "stages"]
            if slow:
                raise NotImplementedError(
                    f"{self.rule.name}: impl='fast' is not available for this step: "
                    f"{slow[0].reason}. Use impl='auto' (the stages run where no fast form "
                    f"applies) or impl='reference'.")
        counter = [0]
        try:
            infos = run_plans(self, plans, shards, flag, comm, counter)
        except NonFiniteElsewhere as e:
            self.last_collectives = counter[0]
            return self._refuse(e.ranks, loss)
        self.last_collectives = counter[0]
        self._step_calls += 1
        forms = {p.form != "stages" for p in plans}
        self.last_impl = "mixed" if len(forms) == 2 else "fast" if forms == {True} else "reference"
        self.last_info = infos
        return loss

    def _refuse(self, ranks: list, loss):
        """Every rank found a non-finite gradient on some rank's shard: nothing was written."""
        if self.nonfinite == "raise":
            raise NonFiniteGradientError(checks.nonfinite_message(self.rule.name, self.param_groups, ranks))
        self.skipped_steps += 1
        return loss

    def _casts_pending(self, groups: list) -> bool:
        """Whether :meth:`_follow_params` would cast some state this step."""
        params = [p for _, _, ps, _ in groups for p in ps]
        sig = (list(map(id, params)), list(map(_DTYPE, params)), list(map(_DEVICE, params)),
               list(map(_SHAPE, params)))
        if sig == self._layout_sig:
            return False
        return any(self._state_casts(group, p) for _, group, ps, _ in groups for p in ps
                   if self._layouts.get(id(p)) != (p.dtype, p.device, p.shape))

    def _state_casts(self, group: dict, p: Tensor) -> dict:
        """{key: (dtype, device)} for the state tensors of ``p`` that do not follow it."""
        state = self.state.get(p)
        if not state:
            return {}
        full = {k for s in self._chain(group) for k in s.FULL_PRECISION_STATE}
        out = {}
        for k, v in state.items():
            if not isinstance(v, Tensor) or k == "step":  # torch's policy: counters stay put
                continue
            dtype = v.dtype
            if v.is_floating_point() and p.is_floating_point():
                dtype = torch.promote_types(p.dtype, torch.float32) if k in full else p.dtype
            if v.dtype != dtype or v.device != p.device:
                out[k] = (dtype, p.device)
        return out

    def _follow_params(self, groups: list) -> None:
        """Cast the state of every parameter whose (dtype, device) is not the one it had at its
        last step to its parameter's dtype and device (see the class docstring)."""
        params = [p for _, _, ps, _ in groups for p in ps]
        sig = (list(map(id, params)), list(map(_DTYPE, params)), list(map(_DEVICE, params)),
               list(map(_SHAPE, params)))
        if sig == self._layout_sig:  # the same tensors, as they were at the last step
            return
        self._layout_sig = sig
        self._dense_state.clear()
        layouts = self._layouts
        for _, group, ps, _ in groups:
            for p in ps:
                now = (p.dtype, p.device, p.shape)
                if layouts.get(id(p)) == now:
                    continue
                layouts[id(p)] = now
                state = self.state.get(p)
                for k, (dtype, device) in self._state_casts(group, p).items():
                    state[k] = state[k].to(device=device, dtype=dtype)


__all__ = ["RuleOptimizer", "NonFiniteGradientError", "NO_INFO"]

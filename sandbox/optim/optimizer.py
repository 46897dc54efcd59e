"""A thin ``torch.optim.Optimizer`` that runs any registered rule.

The optimizer only loops over parameters, keeps the state, and applies ``θ ← θ + u`` once per
parameter at the end of the chain; all the math lives in the stages (:mod:`sandbox.optim.stages`).
This per-tensor loop is the reference implementation of every rule.
"""
from __future__ import annotations

import operator
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from .registry import _REGISTRY, RuleSpec
from .replicas import replica_shape
from .stages import Context

NONFINITE = ("raise", "skip", "ignore")
IMPLS = ("auto", "fast", "reference")


class NonFiniteGradientError(FloatingPointError):
    """A gradient holds NaN or Inf; the step was refused and nothing was changed."""


_NARROW = (torch.float16, torch.bfloat16)  # gradients whose norm is taken in float32
_DTYPE, _DEVICE, _SHAPE = (operator.attrgetter(a) for a in ("dtype", "device", "shape"))
_GRAD, _IS_SPARSE = operator.attrgetter("grad"), operator.attrgetter("is_sparse")

class RuleOptimizer(torch.optim.Optimizer):
    """Runs ``rule`` (a :class:`~sandbox.optim.registry.RuleSpec`) as a drop-in torch optimizer.

    Behaviour shared by every rule:
    - several param groups with their own hyperparameters (validated like the constructor's),
      LR schedulers, closures; parameters whose ``grad`` is None are skipped; ``p.grad`` is never
      modified; zero-size, non-contiguous and channels_last parameters work; the math runs in the
      parameter's dtype (reductions of reducing stages in at least float32).
    - ``nonfinite``: ``'raise'`` (default) refuses a step whose gradients hold NaN/Inf with a
      :class:`NonFiniteGradientError` and changes nothing; ``'skip'`` skips such a step (counted in
      ``skipped_steps``), changing nothing; ``'ignore'`` does no check. The check costs one host
      synchronisation per step (not per tensor); 'ignore' removes it.
    - ``last_info`` maps each stepped parameter to the diagnostics its stages recorded at the last
      step (e.g. ``'projection'``: 0 none, 1 channel view, 2 layer view, per replica).
    - ``impl``: ``'reference'`` runs the loop below (each stage's readable per-tensor update);
      ``'fast'`` runs the same chain through :mod:`sandbox.optim.fast` (torch's fused/foreach kernels for
      chains that are exactly torch's SGD/Adam/AdamW, the stages' list forms otherwise) and raises
      ``NotImplementedError`` where it cannot (e.g. non-contiguous tensors); ``'auto'`` (default)
      is fast where available and the reference elsewhere, decided per step before anything is
      touched. ``last_impl`` says which one ran. Both give the same parameters and state up to
      float round-off, and their state dicts are interchangeable.
    - a parameter whose dtype or device changed after its state was made (``model.double()``,
      ``model.float()``, ``model.to('cuda')`` mid-run) takes its state along at its next step, on
      both paths: every floating state tensor except the ``step`` counters is cast to the
      parameter's dtype and moved to its device, as torch.optim's ``load_state_dict`` casts a
      checkpoint's state (torch's own ``step()`` raises on such a mismatch instead). State a stage
      keeps in full precision for 16-bit parameters (Adai's ``beta1_prod``) becomes float32 for
      16-bit parameters and the parameter's dtype otherwise, as when it is created. Non-floating
      state only moves. A step refused for non-finite gradients casts nothing.
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
        self._fast = None
        self._step_calls = 0
        self.skipped_steps = 0
        self.last_info: dict[Tensor, dict] = {}
        self._chains: dict[tuple, tuple] = {}
        self._layouts: dict[int, tuple] = {}  # id(param) -> (dtype, device, shape) at its last step
        self._layout_sig = None  # (ids, dtypes, devices, shapes) of the last step's parameters
        defaults = {**rule.defaults, **hyperparams, "replica_dims": 0}
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        # 'param_names': torch (>= 2.6) records them for named_parameters() input
        skip = ("params", "param_names")
        self.rule.validate({k: v for k, v in param_group.items() if k not in skip})
        super().add_param_group(param_group)
        self.rule.validate({k: v for k, v in self.param_groups[-1].items() if k not in skip})

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
        # torch adds 'differentiable' to the defaults: no hyperparameter of a rule, and
        # add_param_group would copy it into the new group and refuse it
        self.defaults.pop("differentiable", None)
        self._layouts, self._layout_sig = {}, None  # rebuilt at the next step (the state now at hand is checked then)
        if "rule" in state:
            self.rule = _REGISTRY[state["rule"]] if isinstance(state["rule"], str) else state["rule"]
            self._fast, self._chains, self.last_info = None, {}, {}

    def load_state_dict(self, state_dict: dict) -> None:
        """torch.optim's loader, except that state a stage keeps in full precision for 16-bit
        parameters (e.g. Adai's ``beta1_prod``) stays float32 instead of being cast to bfloat16,
        and that hyperparameters the saved groups lack (a torch.optim.Adam/SGD checkpoint has no
        ``project``, ``replica_dims``...) keep their current values."""
        current = [dict(g) for g in self.param_groups]
        super().load_state_dict(state_dict)
        for group, old in zip(self.param_groups, current):
            for k, v in old.items():
                group.setdefault(k, v)
        if self._fast is not None:
            self._fast.reset()
        keys = {k for s in self.rule.stages(self.defaults) for k in getattr(s, "FULL_PRECISION_STATE", ())}
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

    # --- the loop ------------------------------------------------------------------------------
    def _chain(self, group: dict) -> tuple:
        key = tuple((h.name, group[h.name]) for h in self.rule.hypers if h.structural)
        if key not in self._chains:
            self._chains[key] = self.rule.build(group)
        return self._chains[key]

    def _grads_finite(self, grads: list[Tensor]) -> bool:
        if self.nonfinite == "ignore" or not grads:
            return True
        if len({g.device for g in grads}) == 1:
            # One list kernel per precision and one host sync: a NaN or ±inf anywhere makes that
            # tensor's 2-norm non-finite. A finite 2-norm proves the tensor finite; a non-finite
            # one may also be an overflow of the sum of squares (|g| ≳ 1.8e19 in float32), so it
            # is confirmed below. 16-bit gradients are normed in float32 (their own format would
            # overflow at a norm of 65504 in float16). The 2-norm, not the 1-norm: torch's CPU
            # list norm is vectorised for ord 2 only (measured 2.4 against 13.8 ms on 16.5M
            # float32 gradients, 1.7 against 2.8 ms on 1000 small ones).
            narrow = [g for g in grads if g.dtype in _NARROW]
            wide = [g for g in grads if g.dtype not in _NARROW] if narrow else grads
            norms = list(torch._foreach_norm(wide, 2)) if wide else []
            if narrow:
                norms += torch._foreach_norm(narrow, 2, dtype=torch.float32)
            if bool(torch.stack(norms).isfinite().all()):  # stack promotes mixed dtypes
                return True
        return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())

    def _nonfinite_message(self) -> str:
        where = [
            f"group {i} param {j} (shape {tuple(p.shape)})"
            for i, group in enumerate(self.param_groups)
            for j, p in enumerate(group["params"])
            if p.grad is not None and not bool(torch.isfinite(p.grad).all())
        ]
        return (f"{self.rule.name}: step refused, non-finite gradient in {len(where)} tensor(s): "
                f"{', '.join(where)}. Parameters and state are unchanged. Pass nonfinite='skip' "
                f"to skip such steps instead.")

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = [(g, p) for g in self.param_groups for p in g["params"] if p.grad is not None]
        grads = list(map(_GRAD, (p for _, p in work)))
        if any(map(_IS_SPARSE, grads)):
            raise RuntimeError(f"{self.rule.name} does not support sparse gradients")
        if not self._grads_finite(grads):
            if self.nonfinite == "raise":
                raise NonFiniteGradientError(self._nonfinite_message())
            self.skipped_steps += 1
            return loss
        self._step_calls += 1
        if self._follow_params(work) and self._fast is not None:
            self._fast.reset()  # its plans and checks were made for the old layouts
        if self.impl != "reference" and self._fast_step(work):
            return loss
        self.last_impl = "reference"

        # Sweep 1: the stages up to the first reducing stage (and its reduce), for every parameter.
        self.last_info = {}
        pending, sums = [], {}
        for group, p in work:
            ctx = Context(param=p, grad=p.grad, state=self.state[p], hp=group)
            stages = self._chain(group)
            u, i = p.grad, 0
            while i < len(stages) and not stages[i].reduces:
                u = stages[i].update(u, ctx)
                i += 1
            if i == len(stages):  # no reducing stage: apply at once (no whole-model temporaries)
                self._apply(ctx, u)
                continue
            total, count = stages[i].reduce(u, ctx)
            self._accumulate(sums, stages[i].name, total, count, p, ctx.replica_dims)
            pending.append((ctx, stages, i, u))

        # Global statistics (per replica), then sweep 2: the rest of every chain, and θ ← θ + u.
        means = {name: total / count for name, (total, count, _) in sums.items()}
        for ctx, stages, i, u in pending:
            ctx.globals = means
            for stage in stages[i:]:
                u = stage.update(u, ctx)
            self._apply(ctx, u)
        return loss

    def _follow_params(self, work: list) -> bool:
        """Cast the state of every parameter whose (dtype, device, shape) is not the one it had
        at its last step (or that is seen for the first time) to its parameter's dtype and device
        (see the class docstring). True when a parameter stepped before changed dtype, device or shape (``p.data
        = ...``: the caches of the fast path then no longer hold, and torch's fused kernels must
        not be handed state of another shape)."""
        params = [p for _, p in work]
        sig = (list(map(id, params)), list(map(_DTYPE, params)), list(map(_DEVICE, params)),
               list(map(_SHAPE, params)))
        if sig == self._layout_sig:  # the same tensors, as they were at the last step
            return False
        self._layout_sig = sig
        layouts, changed = self._layouts, False
        for group, p in work:
            now = (p.dtype, p.device, p.shape)
            before = layouts.get(id(p))
            if before == now:
                continue
            layouts[id(p)] = now
            changed = changed or before is not None
            state = self.state.get(p)
            if not state:
                continue
            full = {k for s in self._chain(group) for k in getattr(s, "FULL_PRECISION_STATE", ())}
            for k, v in state.items():
                if not isinstance(v, Tensor) or k == "step":  # torch's policy: counters stay put
                    continue
                dtype = v.dtype
                if v.is_floating_point() and p.is_floating_point():
                    dtype = torch.promote_types(p.dtype, torch.float32) if k in full else p.dtype
                if v.dtype != dtype or v.device != p.device:
                    state[k] = v.to(device=p.device, dtype=dtype)
        return changed

    def _fast_step(self, work: list) -> bool:
        """Run the step on the fast path if every parameter qualifies; False to fall back."""
        if self._fast is None:
            from .fast import FastExecutor

            self._fast = FastExecutor(self)
        reason = self._fast.unsupported(work) if work else "no parameter has a gradient"
        if reason is None:
            self._fast.step(work)
            self.last_impl = "fast"
            return True
        if self.impl == "fast" and work:
            raise NotImplementedError(
                f"{self.rule.name}: impl='fast' is not available for this step: {reason}. Use "
                f"impl='auto' (falls back to the reference) or impl='reference'.")
        return False

    def _apply(self, ctx: Context, u: Tensor) -> None:
        ctx.param.add_(u)
        self.last_info[ctx.param] = ctx.info

    @staticmethod
    def _accumulate(sums: dict, name: str, total: Tensor, count: int, p: Tensor, rd: int) -> None:
        shape = replica_shape(p, rd)
        if name not in sums:
            sums[name] = (total, count, shape)
            return
        acc, n, first = sums[name]
        if shape != first:
            raise ValueError(
                f"{name} takes a mean over all parameters per replica, so every parameter needs "
                f"the same replica shape; got {first} and {shape} (replica_dims of the groups)"
            )
        sums[name] = (acc + total.to(acc.dtype), n + count, first)

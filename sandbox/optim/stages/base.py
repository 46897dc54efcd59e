"""The stage interface: one small transformation of the update direction, and what it declares.

A rule is a chain of stages in the spirit of optax's ``chain``::

    adamw = chain(scale_by_adam(), add_decayed_weights(), scale_by_lr())

What passes from stage to stage is a :class:`Flow`: the direction ``u`` (the gradient, or −g
with ``maximize``, for the first stage) and the two values a later stage may need from an
earlier one, explicitly:

- ``decay_scale``: the factor on a decoupled decay placed later in the chain (the projection sets
  it to ``wd_ratio`` where it fires, per replica);
- ``buffer``: the name of the state tensor the direction IS (a heavy ball without Nesterov returns
  its buffer; the official SGDP's projection writes back into it).

A stage reads the parameter, the gradient, the hyperparameters and its own slice of the
per-parameter state from a read-only :class:`Context`, and writes diagnostics to ``ctx.info``.
Most stages only transform ``u``: they implement ``update(u, ctx) -> u``; a stage that reads or
sets the explicit values overrides ``apply(flow, ctx) -> flow``.

Every stage DECLARES what it is, and a rule's metadata is derived from its chain (see
:mod:`sandbox.optim.registry` and :mod:`sandbox.optim.traits`):

- ``hypers``: the hyperparameters it reads, as :class:`~sandbox.optim.hyper.Hyper` records
  (validation, default, provenance); a rule may restate a default and its source;
- ``traits``: a :class:`StageTraits`: its homogeneity map (the degree of its output in the
  gradient given the degree of its input), momentum kind and coefficient, whether it preconditions,
  adds weight decay or projects;
- ``state``: the state keys it keeps (documentation and ``load_state_dict`` validation).

A stage without ``traits`` cannot be registered: an undeclared stage is an error, never a
silent default.

Stages that need a statistic over ALL parameters (Adai's global mean of v̂) declare
``reduces = True``: the optimizer then runs the chain in two sweeps. Sweep 1 runs, for every
parameter of every group, the stages before the reducing one and its :meth:`Stage.reduce`, which
returns per-replica partial sums; the optimizer adds them up into per-replica means and passes
them as ``ctx.globals[stage.name]``; sweep 2 runs the reducing stage's update and the stages after.

Conventions every stage keeps:
- ``ctx.grad`` and ``ctx.param`` are never written to (``p.grad`` is never modified); the
  optimizer alone writes the parameter, once, at the end.
- ``u`` is never modified in place, except by the projection's documented write-back into the
  state buffer named by ``flow.buffer``.
- Whole-tensor operations only; no host synchronisation.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Optional

import torch
from torch import Tensor

from .. import hyper as H


@dataclass
class Context:
    """What a stage may read about one parameter at one step."""

    param: Tensor  # θ_t, read only
    grad: Tensor  # the gradient the rule follows (−∇ with maximize), read only
    state: dict  # this parameter's persistent state (the optimizer's ``state[p]``)
    hp: Mapping[str, Any]  # the parameter group: hyperparameters and replica_dims
    globals: dict = field(default_factory=dict)  # per-replica results of reducing stages
    info: dict = field(default_factory=dict)  # diagnostics (e.g. which projection view fired)

    @property
    def replica_dims(self) -> int:
        return int(self.hp.get("replica_dims", 0))

    def state_tensor(self, key: str, fill: float = 0.0, dtype: torch.dtype | None = None) -> Tensor:
        """The state tensor ``key``, created as ``fill`` (param's shape and layout; the param's
        dtype unless ``dtype`` is given) if absent."""
        if key not in self.state:
            self.state[key] = torch.full_like(self.param, fill, dtype=dtype,
                                              memory_format=torch.preserve_format)
        return self.state[key]

    @property
    def compute_dtype(self) -> torch.dtype:
        """float32 for low-precision (16-bit) parameters, else the parameter's dtype."""
        return torch.promote_types(self.param.dtype, torch.float32)

    def step_count(self, key: str = "step") -> float:
        """Increment this parameter's step counter (a CPU float32 tensor, as torch.optim keeps it)
        and return its new value as a Python number (no device synchronisation: it lives on the CPU)."""
        if key not in self.state:
            self.state[key] = torch.tensor(0.0, dtype=torch.float32)
        self.state[key] += 1
        return float(self.state[key])


@dataclass(frozen=True)
class Flow:
    """What one stage hands the next: the direction and the values later stages read."""

    u: Tensor
    decay_scale: Any = 1.0  # factor on a later decoupled decay (wd_ratio where the projection fired)
    buffer: Optional[str] = None  # the state key whose tensor ``u`` is (None: a fresh tensor)

    def with_u(self, u: Tensor, buffer: Optional[str] = None) -> "Flow":
        return replace(self, u=u, buffer=buffer)


def _zero(hp: Mapping[str, Any]) -> float:
    return 0.0


@dataclass(frozen=True)
class StageTraits:
    """What a stage contributes to its rule's theory traits.

    - ``degree = (a, b)``: the stage maps an input homogeneous of degree k in the gradient to an
      output of degree a·k + b (eps and decay → 0). Linear stages (momentum, projection, lr) are
      (1, 0); Adam's m/√v is (0, 0); root-free m/(B·v) is (−1, 0); a sign is (0, 0).
    - ``momentum``: ``None`` or the kind of temporal filter the stage applies: 'heavy_ball'
      (b = μb + u), 'ema' (m = βm + (1−β)u) or 'adaptive' (Adai's per-element β1); ``beta``
      gives its coefficient from the hyperparameters (Adai: the isotropic value 1 − β0).
    - ``preconditions``: divides by a running statistic of the gradient.
    - ``decays``: adds weight decay λθ; coupled when a filter/preconditioner comes after it.
      ``decay_scale`` gives a constant factor on that decay (SGDP's 1/(1 − momentum)).
    - ``projects``: removes the radial part of the direction.
    - ``direction_is_buffer(hp)``: the returned direction is the stored buffer itself.
    - ``writes_back(hp)``: a projection that writes into such a buffer (official SGDP).
    """

    degree: tuple[float, float] = (1.0, 0.0)
    momentum: Optional[str] = None
    beta: Callable[[Mapping[str, Any]], float] = _zero
    dampening: Callable[[Mapping[str, Any]], float] = _zero
    nesterov: Callable[[Mapping[str, Any]], bool] = lambda hp: False
    preconditions: bool = False
    decays: bool = False
    decay_scale: Callable[[Mapping[str, Any]], float] = lambda hp: 1.0
    projects: bool = False
    direction_is_buffer: Callable[[Mapping[str, Any]], bool] = lambda hp: False
    writes_back: Callable[[Mapping[str, Any]], bool] = lambda hp: False


class Stage:
    """Base class. Subclasses declare ``name``, ``hypers``, ``traits`` (and ``state``) and
    implement :meth:`update` (or :meth:`apply`), plus :meth:`reduce` if ``reduces``."""

    name: str = "stage"
    reduces: bool = False
    hypers: tuple = ()
    traits: Optional[StageTraits] = None
    state: Mapping[str, str] = {}  # state key -> what it holds
    FULL_PRECISION_STATE: tuple = ()  # keys kept in float32 for 16-bit parameters

    def required_state(self, hp: Mapping[str, Any]) -> tuple:
        """The state keys this stage holds once its parameter has stepped (a checkpoint lacking
        one is refused: resuming it would run another algorithm). Default: every declared key."""
        return tuple(self.state)

    def apply(self, flow: Flow, ctx: Context) -> Flow:
        """One step of the chain. The default transforms the direction only."""
        return flow.with_u(self.update(flow.u, ctx))

    def update(self, u: Tensor, ctx: Context) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError(f"stage {self.name!r} implements neither update nor apply")

    def reduce(self, u: Tensor, ctx: Context) -> tuple[Tensor, int]:  # pragma: no cover
        """Sweep 1 of a two-pass stage: return (per-replica sum, elements per replica)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class scale_by_lr(Stage):
    """u ← −lr·u: the last stage of every rule; the optimizer then applies θ ← θ + u."""

    name = "scale_by_lr"
    hypers = (H.lr(H.REQUIRED, ""),)
    traits = StageTraits()

    def update(self, u: Tensor, ctx: Context) -> Tensor:
        return u * (-ctx.hp["lr"])


class add_decayed_weights(Stage):
    """u ← u + λ·s·θ, with λ = weight_decay.

    Where it sits in the chain decides the kind of decay (as in optax):
    - first, before the moments: coupled L2 (torch's SGD/Adam, Adai), the decay passes through
      momentum and preconditioning;
    - after the direction is formed: decoupled decay (AdamW, AdamP, SGDP, AdaiW, rfadamw), which
      with the final ``scale_by_lr`` is θ ← θ − lr·λ·s·θ − lr·u, i.e. θ(1 − lr·λ·s) − lr·u.

    ``s = flow.decay_scale × extra``: the projection sets ``flow.decay_scale`` to ``wd_ratio``
    where it fires (a per-replica tensor), so wd_ratio reaches only a decay placed AFTER the
    projection; ``extra`` is 1/(1 − momentum) for SGDP (official semantics).
    """

    name = "add_decayed_weights"
    hypers = (H.weight_decay(0.0, "", "weight decay λ"),)

    def __init__(self, scale_by_inverse_one_minus_momentum: bool = False):
        self.sgdp_scaling = scale_by_inverse_one_minus_momentum
        if self.sgdp_scaling:
            self.hypers = self.hypers + (H.momentum(0.0, ""),)
        self.traits = StageTraits(
            decays=True,
            decay_scale=(lambda hp: 1.0 / (1.0 - float(hp["momentum"]))) if self.sgdp_scaling
            else (lambda hp: 1.0))

    def apply(self, flow: Flow, ctx: Context) -> Flow:
        wd = ctx.hp["weight_decay"]
        if wd == 0:
            return flow
        scale = flow.decay_scale
        if self.sgdp_scaling:
            scale = scale / (1.0 - ctx.hp["momentum"])
        return flow.with_u(flow.u + (wd * scale) * ctx.param)


def chain(*stages: Optional[Stage]) -> tuple[Stage, ...]:
    """Compose stages (a tuple, applied left to right). Empty entries are dropped."""
    return tuple(s for s in stages if s is not None)


def run_chain(stages, flow: Flow, ctx: Context) -> Flow:
    """Apply ``stages`` in order."""
    for s in stages:
        flow = s.apply(flow, ctx)
    return flow

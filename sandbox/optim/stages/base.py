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

Statistics across elements are explicit requests, so that the adapter can batch them and, under
FSDP2, take them across the shards of a tensor (:mod:`sandbox.optim.forms.rounds`). A stage whose
``apply`` (or optional ``prepare``) is a generator that yields a :class:`Reduce` (or a list of
them): partial values of this parameter, an ``op`` (``'sum'`` or ``'max'``) and a ``scope``
(``'tensor'``: across the shards of this one tensor; ``'global'``: across every parameter of every
group, as Adai's mean), and receives the reduced values back (a tensor, or a list in the same
order). The adapter drives every parameter's chain to its next request and reduces all pending
requests of all parameters in one round (one collective when the parameters are sharded);
single-process runs use the same driver with local reductions. The leading ``replica_dims`` axes of a
request's value index this shard's replicas; its other axes must not depend on the shard.

- ``reductions``: the ``(op, scope)`` pairs a stage may request; ``()`` for a stage that is
  element-wise apart from them. Left undeclared (``None``, a stage written before requests
  existed), a stage runs as before on plain tensors (one process, DDP); on a sharded parameter it
  runs on the DTensors themselves, so that its whole-tensor statistics stay whole-tensor by
  DTensor's rules (exact, but one blocking collective per statistic per tensor: declare it to
  batch them). A declared op or scope the core cannot distribute is refused on sharded parameters.
- ``prepare(ctx)``: requests that depend only on the parameter, the gradient and the state as the
  step found them (the projection's verdict): run for every parameter before any stage, reduced in
  the step's first round; what it returns is ``ctx.prepared[stage]`` when ``apply`` runs (with
  ``prepare_overlaps = True``: once ``apply``'s first request is answered, so that both are served
  in one round).
- ``defers_writes``: the stage writes no state before its first request (none at all if it makes
  none); left None, it is taken to be true exactly when the stage declares no ``state``. A sharded
  step agrees on its gradients being finite in its first round; stages that defer their writes may
  run before that round (their requests ride on it), the others wait for it (nothing is written
  before it).

The old two-sweep protocol (``reduces = True`` with ``reduce(u, ctx) -> (per-replica sum, count)``
and ``update``, the mean in ``ctx.globals[stage.name]``) still works: it becomes one global request.

Conventions every stage keeps:
- ``ctx.grad`` and ``ctx.param`` are never written to (``p.grad`` is never modified); the
  optimizer alone writes the parameter, once, at the end.
- ``u`` is never modified in place, except by the projection's documented write-back into the
  state buffer named by ``flow.buffer``.
- Whole-tensor operations only; no host synchronisation.
- ``ctx.param``, ``ctx.grad``, ``flow.u`` and the state tensors are this process's shard of the
  parameter under FSDP2 (plain tensors; in-place writes update the sharded tensors); ``ctx.shape``
  is the parameter's full shape.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import GeneratorType
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
    globals: dict = field(default_factory=dict)  # per-replica means of old-style reducing stages
    info: dict = field(default_factory=dict)  # diagnostics (e.g. which projection view fired)
    shape: Any = None  # the parameter's full shape (``param`` may be one shard of it)
    prepared: dict = field(default_factory=dict)  # stage -> what its ``prepare`` returned

    def __post_init__(self):
        if self.shape is None:
            self.shape = self.param.shape

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


OPS = ("sum", "max")
SCOPES = ("tensor", "global")


@dataclass(frozen=True)
class Reduce:
    """A request a stage yields: reduce ``value`` with ``op`` over ``scope``.

    - ``op``: ``'sum'`` or ``'max'`` (NaN propagates through max);
    - ``scope``: ``'tensor'`` (across the shards of this parameter: the whole tensor's value) or
      ``'global'`` (summed over every parameter of every group that requests ``key``, per replica);
    - ``value``: this shard's partial values; its leading ``replica_dims`` axes are this shard's
      replicas, the others must not depend on the shard (an empty shard sends the identity: 0 for
      a sum, −inf for a max);
    - ``key``: the name of a global statistic (contributions with the same key are added).

    The stage receives a tensor of ``value``'s shape and dtype: the reduced value for its replicas.
    """

    op: str
    scope: str
    value: Tensor
    key: str = ""


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
    - ``modelled``: these traits describe the stage's update SIZE as ``theory/`` models it (a
      linear filter, Adam's or the root-free preconditioner, the projection, a decay, the lr).
      A stage whose size law is another (a sign, a trust ratio, a rotational step, a scheduled
      decay) leaves it False, and ``verify`` reports its rules as not covered instead of holding
      them to another rule's predictions. Default False: a new stage is not assumed modelled.
    - ``size_law``: for a stage that is not ``modelled``, the name of the size law ``theory/``
      has for it ('sign': ‖u‖² = d, Lion; 'trust_ratio': the step is a fixed fraction of ‖θ‖,
      LAMB/LARS; 'rotation': each neuron's angle set to its equilibrium, the rotational variants;
      'corrected_decay': a decay that follows the lr schedule, AdamC/SGDC). ``verify`` selects the
      claims of those laws by it; '' for none.
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
    modelled: bool = False
    size_law: str = ""


class Stage:
    """Base class. Subclasses declare ``name``, ``hypers``, ``traits`` (and ``state``,
    ``reductions``, ``defers_writes``) and implement :meth:`update` (or :meth:`apply`, possibly a
    generator of :class:`Reduce` requests), optionally :meth:`prepare`."""

    name: str = "stage"
    reduces: bool = False  # the old two-sweep protocol (reduce/update); see the module docstring
    reductions: Optional[tuple] = None  # (op, scope) pairs it may request; () element-wise
    defers_writes: Optional[bool] = None  # writes no state before its first request (None: iff it keeps no state)
    prepare_overlaps: bool = False  # apply reads ctx.prepared only after its first request
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

    # ``prepare(ctx)``: optional (see the module docstring); a stage without one leaves it None.
    prepare: Optional[Callable] = None

    def reduce(self, u: Tensor, ctx: Context) -> tuple[Tensor, int]:  # pragma: no cover
        """Sweep 1 of a two-pass stage: return (per-replica sum, elements per replica)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class scale_by_lr(Stage):
    """u ← −lr·u: the last stage of every rule; the optimizer then applies θ ← θ + u (both in
    one pass, θ ← θ − lr·u, when this stage ends the chain and lr is a number)."""

    name = "scale_by_lr"
    reductions = ()
    defers_writes = True
    hypers = (H.lr(H.REQUIRED, ""),)
    traits = StageTraits(modelled=True)

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
    reductions = ()
    defers_writes = True

    def __init__(self, scale_by_inverse_one_minus_momentum: bool = False):
        self.sgdp_scaling = scale_by_inverse_one_minus_momentum
        if self.sgdp_scaling:
            self.hypers = self.hypers + (H.momentum(0.0, ""),)
        self.traits = StageTraits(
            decays=True, modelled=True,
            decay_scale=(lambda hp: 1.0 / (1.0 - float(hp["momentum"]))) if self.sgdp_scaling
            else (lambda hp: 1.0))

    def apply(self, flow: Flow, ctx: Context) -> Flow:
        wd = ctx.hp["weight_decay"]
        if wd == 0:
            return flow
        scale = flow.decay_scale
        if self.sgdp_scaling:
            scale = scale / (1.0 - ctx.hp["momentum"])
        if isinstance(scale, Tensor):  # per replica (the projection's wd_ratio): one pass
            return flow.with_u(torch.addcmul(flow.u, ctx.param, wd * scale))
        return flow.with_u(torch.add(flow.u, ctx.param, alpha=wd * scale))


def chain(*stages: Optional[Stage]) -> tuple[Stage, ...]:
    """Compose stages (a tuple, applied left to right). Empty entries are dropped."""
    return tuple(s for s in stages if s is not None)


def defers_writes(stage: Stage) -> bool:
    """Whether ``stage`` writes no state before its first request (see ``Stage.defers_writes``)."""
    d = stage.defers_writes
    return (not stage.state) if d is None else bool(d)


def old_style_reducing(stage: Stage) -> bool:
    """A stage of the old two-sweep protocol (``reduces = True`` with ``reduce``/``update``): the
    core runs it as one global request. Under sharding it still needs ``reductions`` declared
    (``(("sum", "global"),)`` if its ``update`` is element-wise)."""
    return bool(stage.reduces)


def requests_of(yielded) -> tuple[list, bool]:
    """(the list of requests, whether a single one was yielded)."""
    if isinstance(yielded, Reduce):
        return [yielded], True
    if isinstance(yielded, (list, tuple)) and yielded and all(isinstance(r, Reduce) for r in yielded):
        return list(yielded), False
    raise TypeError(f"a stage yielded {type(yielded).__name__}; stages yield a Reduce or a list of them")


def drive_local(gen):
    """Run a stage's generator with every request reduced over this one (unsharded) parameter:
    the value itself. Returns what the generator returns; a non-generator is returned as is."""
    if not isinstance(gen, GeneratorType):
        return gen
    try:
        yielded = next(gen)
        while True:
            reqs, single = requests_of(yielded)
            vals = [r.value for r in reqs]
            yielded = gen.send(vals[0] if single else vals)
    except StopIteration as stop:
        return stop.value


def run_chain(stages, flow: Flow, ctx: Context) -> Flow:
    """Apply ``stages`` in order to one unsharded parameter (requests reduced over it alone; a
    global statistic is then this parameter's). The optimizer runs chains through
    :mod:`sandbox.optim.forms.rounds` instead, which reduces over every parameter."""
    for s in stages:
        if s.prepare is not None:
            ctx.prepared[s] = drive_local(s.prepare(ctx))
    for s in stages:
        flow = drive_local(s.apply(flow, ctx))
    return flow

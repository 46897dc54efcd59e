"""The stage interface: one small transformation of the update direction.

A rule is a chain of stages in the spirit of optax's ``chain``::

    adamw = chain(scale_by_adam(), add_decayed_weights(), scale_by_lr())

Each stage maps the incoming direction ``u`` (the raw gradient for the first stage) to a new
direction, reading the parameter, the raw gradient, the hyperparameters and its own slice of the
per-parameter state from a :class:`Context`. The last stage (``scale_by_lr``) returns the
increment, and the optimizer applies ``θ ← θ + u``.

Stages that need a statistic over ALL parameters (Adai's global mean of v̂) declare
``reduces = True``: the optimizer then runs the chain in two sweeps. Sweep 1 runs, for every
parameter of every group, the stages before the reducing one and its :meth:`Stage.reduce`, which
returns per-replica partial sums; the optimizer adds them up into per-replica means and stores
them in ``ctx.globals[stage.name]``; sweep 2 runs the reducing stage's :meth:`Stage.update` and the
stages after it.

Conventions every stage keeps:
- ``ctx.grad`` and ``ctx.param`` are never written to (``p.grad`` is never modified); the
  optimizer alone writes the parameter, once, at the end.
- ``u`` is never modified in place, with one documented exception: the radial projection may
  write back into a stored momentum buffer when the rule asks for the official SGDP behaviour.
- Whole-tensor operations only; no host synchronisation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import Tensor


@dataclass
class Context:
    """What a stage may read about one parameter at one step."""

    param: Tensor  # θ_t, read only
    grad: Tensor  # the raw gradient g_t, read only
    state: dict  # this parameter's persistent state (the optimizer's ``state[p]``)
    hp: Mapping[str, Any]  # the parameter group: hyperparameters and replica_dims
    globals: dict = field(default_factory=dict)  # per-replica results of reducing stages
    decay_scale: Any = 1.0  # factor on decoupled decay; the projection sets it to wd_ratio
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


class Stage:
    """Base class. Subclasses implement :meth:`update` (and :meth:`reduce` if ``reduces``)."""

    name: str = "stage"
    reduces: bool = False

    def update(self, u: Tensor, ctx: Context) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def reduce(self, u: Tensor, ctx: Context) -> tuple[Tensor, int]:  # pragma: no cover
        """Sweep 1 of a two-pass stage: return (per-replica sum, elements per replica)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class scale_by_lr(Stage):
    """u ← −lr·u: the last stage of every rule; the optimizer then applies θ ← θ + u."""

    name = "scale_by_lr"

    def update(self, u: Tensor, ctx: Context) -> Tensor:
        return u * (-ctx.hp["lr"])


class add_decayed_weights(Stage):
    """u ← u + λ·s·θ, with λ = weight_decay.

    Where it sits in the chain decides the kind of decay (as in optax):
    - first, before the moments: coupled L2 (torch's SGD/Adam, Adai), the decay passes through
      momentum and preconditioning;
    - after the direction is formed: decoupled decay (AdamW, AdamP, SGDP, AdaiW, rfadamw), which
      with the final ``scale_by_lr`` is θ ← θ − lr·λ·s·θ − lr·u, i.e. θ(1 − lr·λ·s) − lr·u.

    ``s = ctx.decay_scale × extra(hp)``: the projection sets ``ctx.decay_scale`` to ``wd_ratio``
    where it fires (a per-replica tensor), so wd_ratio reaches only a decay placed AFTER the
    projection; ``extra`` is 1/(1 − momentum) for SGDP (official semantics).
    """

    name = "add_decayed_weights"

    def __init__(self, scale_by_inverse_one_minus_momentum: bool = False):
        self.sgdp_scaling = scale_by_inverse_one_minus_momentum

    def update(self, u: Tensor, ctx: Context) -> Tensor:
        wd = ctx.hp["weight_decay"]
        if wd == 0:
            return u
        scale = ctx.decay_scale
        if self.sgdp_scaling:
            scale = scale / (1.0 - ctx.hp["momentum"])
        return u + (wd * scale) * ctx.param


def chain(*stages: Stage) -> tuple[Stage, ...]:
    """Compose stages (a tuple, applied left to right). Empty entries are dropped."""
    return tuple(s for s in stages if s is not None)

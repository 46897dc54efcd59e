"""The theory traits of a registered rule, composed from what its stages declare (no table of names).

``theory`` is pure numpy and knows rules only through :class:`theory.RuleTraits`
(homogeneity k, momentum kind and coefficient, projection, decay coupling, ...). This module
composes those traits for ANY registered rule, a user's own included, from the
:class:`~sandbox.optim.stages.base.StageTraits` each stage of its chain declares:

- k: the composition of the stages' homogeneity maps k ↦ a·k + b, starting from the gradient's
  k = 1 (Adam's m/√v sends any k to 0; root-free m/(B·v) sends k to −k);
- momentum: the first stage that declares a temporal filter gives its kind and coefficient
  (Adai's ``adaptive_inertia`` is an EMA at its isotropic value β1 = 1 − β0, flagged
  ``adaptive_inertia``); a coefficient of 0 means no momentum;
- projection: a stage that declares ``projects``; it also projects the stored buffer when the
  stage before it returns its buffer as the direction and the projection writes back (SGDP);
- decay: a stage that declares ``decays`` is coupled L2 when a filter or preconditioner comes
  after it (the decay passes through it), decoupled otherwise; coupled L2 placed after a
  preconditioner (root-free RMSProp) is not preconditioned; its ``decay_scale`` is the constant
  factor on λ (SGDP's 1/(1 − momentum)).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from theory import RuleTraits


def chain_degree(stages: Sequence) -> float:
    """The homogeneity degree of the chain's update in the gradient (eps, decay → 0)."""
    k = 1.0
    for s in stages:
        a, b = s.traits.degree
        k = a * k + b
    return k + 0.0  # no −0.0


def _filters(s) -> bool:
    return bool(s.traits.momentum or s.traits.preconditions)


def decay_placement(stages: Sequence) -> tuple[str, bool, Any]:
    """(coupling, l2_preconditioned, the decaying stage or None) of a chain."""
    for i, s in enumerate(stages):
        if s.traits.decays:
            after = any(_filters(t) for t in stages[i + 1:])
            before = any(t.traits.preconditions for t in stages[:i])
            return ("coupled" if after else "decoupled"), not (after and before), s
    return "none", True, None


def size_laws(name: str, **hp) -> frozenset[str]:
    """The size laws (``StageTraits.size_law``: 'sign', 'trust_ratio', 'rotation',
    'corrected_decay') of the stages of the registered rule ``name`` at ``hp`` (its defaults
    otherwise; a required value without one is filled with 1, only to see the chain's shape)."""
    from .hyper import REQUIRED
    from .registry import get_rule

    spec = get_rule(name)
    full = {k: (1 if v is REQUIRED else v) for k, v in {**spec.defaults, **hp}.items()}
    return frozenset(s.traits.size_law for s in spec.stages(full) if s.traits.size_law)


def rule_traits(name: str, projection_active: bool = True, **hp) -> RuleTraits:
    """:class:`theory.RuleTraits` of the registered rule ``name`` at hyperparameters ``hp``.

    ``projection_active=False`` describes a projected rule where the projection cannot act
    (vector weights, a loss that is not scale-invariant): it then runs as its base rule.

    >>> rule_traits("sgdp", lr=0.1, momentum=0.9).decay_scale   # 1/(1 - 0.9)
    10.000000000000002
    """
    from .registry import get_rule

    spec = get_rule(name)
    full = {**spec.defaults, **hp}
    return chain_traits(spec.stages(full), full, name=spec.name,
                        projection_active=projection_active)


def chain_traits(stages: Sequence, hp: Mapping[str, Any], name: str = "",
                 projection_active: bool = True) -> RuleTraits:
    """The traits of a chain at hyperparameters ``hp`` (see the module docstring)."""
    kind, beta, damp, nesterov, adaptive = "none", 0.0, 0.0, False, False
    filt = next((s for s in stages if s.traits.momentum), None)
    if filt is not None:
        t = filt.traits
        kind, beta = ("ema" if t.momentum == "adaptive" else t.momentum), float(t.beta(hp))
        damp, nesterov, adaptive = float(t.dampening(hp)), bool(t.nesterov(hp)), t.momentum == "adaptive"
    if beta == 0.0:
        kind = "none"
    proj = [i for i, s in enumerate(stages) if s.traits.projects]
    projected = bool(proj) and projection_active
    project_buffer = False
    if projected and proj[0] > 0:
        prev, p = stages[proj[0] - 1], stages[proj[0]]
        project_buffer = bool(prev.traits.direction_is_buffer(hp)) and bool(p.traits.writes_back(hp)) \
            and kind == "heavy_ball"
    decay, l2_pre, dec = decay_placement(stages)
    decay_scale = float(dec.traits.decay_scale(hp)) if dec is not None else 1.0
    return RuleTraits(homogeneity=chain_degree(stages), momentum=beta, momentum_kind=kind,
                      projected=projected, decay=decay, dampening=damp, nesterov=nesterov,
                      decay_scale=decay_scale, l2_preconditioned=l2_pre,
                      project_buffer=project_buffer, adaptive_inertia=adaptive, name=name)

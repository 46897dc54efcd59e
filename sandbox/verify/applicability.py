"""Which registered rules a claim covers, at which hyperparameters — read from the registry's
metadata, so that a newly registered rule is checked without new code wherever a claim applies.

A claim states its scope as a predicate on :class:`~sandbox.registry.RuleSpec` traits
(``homogeneity``, ``momentum_kind``, ``decay``, ``projected``) and :func:`rules_where` lists the
registered rules that satisfy it. :func:`theory_traits` turns a rule and its hyperparameters
into ``theory.RuleTraits`` (the theory's generic input) from the same metadata plus the rule's
stage chain (e.g. SGDP's decay factor 1/(1 − momentum) is read off its decay stage).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import sandbox
from sandbox.hyper import REQUIRED
from sandbox.registry import RuleSpec
from sandbox.stages import add_decayed_weights

# Stages that rescale the direction per element (a coupled L2 term placed before one of them is
# "preconditioned"; see theory.RuleTraits.l2_preconditioned).
PRECONDITIONERS = ("scale_by_adam", "adaptive_inertia", "scale_by_rootfree_adam",
                   "precondition_rootfree")


def rules_where(predicate: Callable[[RuleSpec], bool]) -> list[str]:
    """Registered rule names (registry order) whose spec satisfies ``predicate``."""
    return [n for n in sandbox.available() if predicate(sandbox.info(n))]


def momentum_hyper(spec: RuleSpec, beta: float) -> dict:
    """The hyperparameters that set the rule's momentum coefficient to ``beta``:
    ``momentum`` (heavy ball) or ``betas[0]`` (EMA); {} for 'none'/'adaptive' rules."""
    d = spec.defaults
    if spec.momentum_kind == "heavy_ball" and "momentum" in d:
        return {"momentum": float(beta)}
    if spec.momentum_kind == "ema" and "betas" in d:
        return {"betas": (float(beta), d["betas"][1])}
    return {}


def momentum_of(spec: RuleSpec, hp: Mapping[str, Any]) -> float:
    """The momentum coefficient the rule runs with (0 for 'none'; Adai: its β0-based
    isotropic value 1 − β0, a heuristic)."""
    full = {**spec.defaults, **hp}
    if spec.momentum_kind == "heavy_ball":
        return float(full.get("momentum", 0.0))
    if spec.momentum_kind == "ema":
        return float(full["betas"][0])
    if spec.momentum_kind == "adaptive":
        return 1.0 - float(full["betas"][0])
    return 0.0


def exact_limit(spec: RuleSpec) -> dict:
    """The eps → 0 limit in which homogeneity and the exact identities hold: every ``eps`` and
    ``proj_eps`` the rule has set to 0 (Adam's denominator term, root-free's damping, the
    projection's norm guard). Adai's ``eps`` bounds the inertia and is scale-free; setting it to 0
    only lifts the bound β1 ≤ 1 − eps, harmless when every v̂ > 0."""
    return {k: 0.0 for k in ("eps", "proj_eps") if k in spec.defaults}


def claim_hyperparameters(spec: RuleSpec, lr: float, batch_size: int = 1,
                          **overrides) -> dict:
    """Hyperparameters for a claim's run: ``lr``, ``batch_size`` where the rule has one, and the
    ``overrides`` the rule accepts (others are dropped: e.g. ``momentum`` for an EMA rule)."""
    d = spec.defaults
    hp = {"lr": float(lr)}
    if "batch_size" in d:
        hp["batch_size"] = int(batch_size)
    hp.update({k: v for k, v in overrides.items() if k in d})
    missing = [k for k, v in {**d, **hp}.items() if v is REQUIRED]
    if missing:
        raise ValueError(f"{spec.name}: the claim gives no value for required {missing}")
    return hp


def decay_stage_scales_by_momentum(spec: RuleSpec, hp: Mapping[str, Any]) -> bool:
    """True when the rule's decoupled decay is divided by (1 − momentum) (official SGDP)."""
    return any(isinstance(s, add_decayed_weights) and s.sgdp_scaling for s in spec.stages(hp))


def l2_preconditioned(spec: RuleSpec, hp: Mapping[str, Any]) -> bool:
    """For coupled decay: does the L2 term enter before a per-element preconditioner?"""
    names = [s.name for s in spec.stages(hp)]
    if "add_decayed_weights" not in names:
        return True
    i = names.index("add_decayed_weights")
    return any(n in PRECONDITIONERS for n in names[i + 1:])


def theory_traits(name: str, hp: Mapping[str, Any] | None = None, projection_active: bool = True):
    """``theory.RuleTraits`` of a registered rule at ``hp``, from registry metadata.

    ``projection_active=False`` describes a projected rule on a problem where the projection
    cannot act (vector weights, non-invariant losses): it then runs as its base rule.
    Adai ('adaptive') is given the EMA traits with β = 1 − β0 (the isotropic heuristic; its
    predictions are open).
    """
    from theory import RuleTraits

    spec = sandbox.info(name)
    hp = dict(hp or {})
    full = {**spec.defaults, **hp}
    beta = momentum_of(spec, hp)
    kind = "ema" if spec.momentum_kind == "adaptive" else spec.momentum_kind
    if beta == 0.0:
        kind = "none"
    projected = bool(full.get("project", False)) and projection_active
    nesterov = bool(full.get("nesterov", False))
    scale = 1.0 / (1.0 - beta) if decay_stage_scales_by_momentum(spec, full) else 1.0
    return RuleTraits(
        homogeneity=float(spec.homogeneity), momentum=beta, momentum_kind=kind,
        projected=projected, decay=spec.decay, dampening=float(full.get("dampening", 0.0)),
        nesterov=nesterov, decay_scale=scale, l2_preconditioned=l2_preconditioned(spec, full),
        project_buffer=bool(full.get("project_momentum", False)) and not nesterov, name=name)

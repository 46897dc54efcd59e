"""Which registered rules a claim covers, at which hyperparameters — read from the registry's
metadata, so that a newly registered rule is checked without new code wherever a claim applies.

A claim states its scope as a predicate on :class:`~sandbox.optim.registry.RuleSpec` traits
(``homogeneity``, ``momentum_kind``, ``decay``, ``projected``) and :func:`rules_where` lists the
registered rules that satisfy it. :func:`theory_traits` turns a rule and its hyperparameters
into ``theory.RuleTraits`` (the theory's generic input) through :func:`sandbox.optim.traits.rule_traits`.

Only rules built from stages the theory models are checked (each stage says so in its traits,
``StageTraits.modelled``; :func:`theory_rules`): a rule with another stage (a sign update, a
trust ratio, a rotational step, a corrected decay, …) can have the traits of a modelled one
(Lion's are AdamW's) while its update size differs, so the theory's numbers would not be its
predictions. Such rules are checked by the claims of their stages' size law
(``StageTraits.size_law``, :func:`rules_with_law`) where a family has them, and are otherwise
listed in the report as not covered (:func:`uncovered_rules`). A user's stage that declares
``modelled=True`` is checked.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import sandbox
from sandbox.optim.hyper import REQUIRED
from sandbox.optim.registry import RuleSpec
from sandbox.optim.traits import size_laws  # noqa: F401  (the families import it from here)

def chain_at_defaults(name: str) -> tuple:
    """The stages of a registered rule's chain at its defaults (required values filled with 1,
    only to see the chain's shape)."""
    spec = sandbox.info(name)
    hp = {k: (1 if v is REQUIRED else v) for k, v in spec.defaults.items()}
    return spec.stages(hp)


def stage_names(name: str) -> list[str]:
    return [s.name for s in chain_at_defaults(name)]


def theory_rules() -> list[str]:
    """Registered rules (registry order) whose every stage the theory models."""
    return [n for n in sandbox.available() if all(s.traits.modelled for s in chain_at_defaults(n))]


# Size laws that set the WHOLE step of the tensors they act on (the rotational step fixes each
# neuron's angle and norm): a stage of the same chain without a law of its own (RV-AdamW's
# ``rotational_decay``: off on rotational tensors, the base rule's decay elsewhere) is covered
# by such a law when a family checks it.
WHOLE_STEP_LAWS = frozenset({"rotation"})


def uncovered_rules(checked_laws=()) -> dict[str, list[str]]:
    """Registered rules the checks do not cover: {rule: its stages that are neither modelled
    (``StageTraits.modelled``) nor of a size law in ``checked_laws`` (the laws some family checks:
    its ``SIZE_LAWS``; none by default)}. A law-less stage in a chain with a checked law of
    :data:`WHOLE_STEP_LAWS` is covered by that law."""
    checked = frozenset(checked_laws)
    out = {}
    for n in sandbox.available():
        chain = chain_at_defaults(n)
        whole = any(s.traits.size_law in checked & WHOLE_STEP_LAWS for s in chain)
        missing = [s.name for s in chain if not s.traits.modelled
                   and s.traits.size_law not in checked and not (whole and not s.traits.size_law)]
        if missing:
            out[n] = missing
    return out


def rules_with_law(law: str) -> list[str]:
    """Registered rules (registry order) with a stage of size law ``law``: the rules a claim of
    that law covers (a user's stage that declares the law is selected too)."""
    return [n for n in sandbox.available() if law in size_laws(n)]


def rules_where(predicate: Callable[[RuleSpec], bool]) -> list[str]:
    """Rules the theory models (registry order) whose spec satisfies ``predicate``."""
    return [n for n in theory_rules() if predicate(sandbox.info(n))]


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


def theory_traits(name: str, hp: Mapping[str, Any] | None = None, projection_active: bool = True):
    """``theory.RuleTraits`` of a registered rule at ``hp`` (see :func:`sandbox.optim.traits.rule_traits`,
    the single source, which reads them off the rule's stage chain)."""
    from sandbox.optim.traits import rule_traits

    return rule_traits(name, projection_active=projection_active, **dict(hp or {}))


def toy_hyperparameters(spec: RuleSpec, beta: float | None, beta2: float, **extra) -> dict:
    """Hyperparameters of a §2/§3 toy run at lr 1 (the claims rescale lr themselves):

    - the momentum coefficient set to ``beta`` where the rule has one (None: the default);
    - Adam-type rules (k = 0): second-moment EMA ``beta2``, short enough for v to follow the
      gradient's 1/r² decay on a scale-invariant weight;
    - root-free rules (k = −1): preconditioner memory shortened (β2 = 0.99, or lr_cov = 0.01)
      so that its 1/B start is forgotten within the run;
    - then ``extra`` (only the keys the rule accepts)."""
    over: dict = {}
    if beta is not None:
        over.update(momentum_hyper(spec, beta))
    d = spec.defaults
    if spec.homogeneity == 0 and "betas" in d:
        over["betas"] = (d["betas"][0], beta2)
    if spec.homogeneity <= -1:
        over.update({"betas": (d["betas"][0], 0.99)} if "betas" in d else {"lr_cov": 0.01})
    over.update(extra)
    return claim_hyperparameters(spec, 1.0, batch_size=1, **over)

"""The hyperparameters a rule runs with on a problem, and where each value comes from.

Order of precedence: the caller's values, then — for a hyperparameter the rule REQUIRES (no
published default, e.g. SGDP's and Adai's ``lr``) — the problem's ``fallback_hp``, then the
rule's registered defaults. The root-free rules' ``batch_size`` (the B of their B·v
preconditioner) is not a choice: it is always the problem's batch size.
"""
from __future__ import annotations

from typing import Any, Mapping

import sandbox
from sandbox.optim.hyper import REQUIRED

from ..problems import Problem


def resolve_hyperparameters(rule: str, problem: Problem,
                            hp: Mapping[str, Any] | None = None) -> tuple[dict, dict]:
    """(hyperparameters to pass to ``sandbox.create``, provenance of every effective value).

    Raises ValueError (naming the value and the allowed range) for an unknown rule, an unknown
    hyperparameter or a value out of range, before anything is built.
    """
    spec = sandbox.info(rule)
    hp = dict(hp or {})
    source = {k: "given" for k in hp}
    if "batch_size" in spec.defaults:
        if hp.get("batch_size", problem.batch_size) != problem.batch_size:
            raise ValueError(f"{rule}: batch_size={hp['batch_size']!r} must equal the problem's "
                             f"batch size {problem.batch_size} (it is B in the preconditioner B·v)")
        hp["batch_size"], source["batch_size"] = problem.batch_size, f"problem {problem.name}"
    for name, default in spec.defaults.items():
        if name in hp:
            continue
        if default is REQUIRED and name in problem.fallback_hp:
            hp[name] = problem.fallback_hp[name]
            source[name] = f"problem {problem.name} fallback (no published default)"
        elif default is not REQUIRED:
            source[name] = spec.provenance.get(name, "rule default")
    spec.validate(hp)
    effective = {**{k: v for k, v in spec.defaults.items() if v is not REQUIRED}, **hp}
    return hp, {k: (effective[k], source.get(k, "")) for k in effective}

"""The registry of named update rules: ``create``, ``available``, ``info``.

A rule is a :class:`RuleSpec`: its hyperparameters (defaults, ranges, provenance), a builder that
composes its stages from the structural hyperparameters (``nesterov``, ``decoupled``, ``project``,
...), and metadata that ``theory/`` reads (``homogeneity``, momentum kind, decay coupling).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .hyper import Hyper, close_matches, validate
from .stages import Stage


@dataclass(frozen=True)
class RuleSpec:
    """A named rule: metadata and a chain builder.

    ``homogeneity`` is the degree k of the update in the gradient (u(c·g) = c^k u(g), eps → 0):
    SGD-like 1, Adam-like 0, root-free −1, Adai 1 (its β1 depends only on ratios of v).
    ``momentum_kind``: 'none', 'heavy_ball' (b = μb + g) or 'ema' (m = βm + (1−β)g); the
    coefficient's hyperparameter is ``momentum`` or ``betas[0]`` respectively (Adai's is adaptive).
    ``decay``: 'coupled' (L2 added before the moments) or 'decoupled' (applied after the direction).
    """

    name: str
    summary: str
    paper: str
    hypers: tuple[Hyper, ...]
    build: Callable[[Mapping[str, Any]], tuple[Stage, ...]]
    homogeneity: float
    momentum_kind: str
    decay: str
    reference: str = ""
    base: str | None = None  # for a projected variant: the base rule's name

    @property
    def defaults(self) -> dict[str, Any]:
        return {h.name: h.default for h in self.hypers}

    @property
    def provenance(self) -> dict[str, str]:
        return {h.name: h.source for h in self.hypers}

    @property
    def hyper_map(self) -> dict[str, Hyper]:
        return {h.name: h for h in self.hypers}

    def stages(self, hp: Mapping[str, Any] | None = None) -> tuple[Stage, ...]:
        return self.build({**self.defaults, **(hp or {})})

    @property
    def projected(self) -> bool:
        return bool(self.defaults.get("project", False))

    def validate(self, values: Mapping[str, Any]) -> None:
        validate(self.name, self.hyper_map, values)
        hp = {**self.defaults, **values}
        if hp.get("nesterov") and "momentum" in hp and "dampening" in hp and self.momentum_kind == "heavy_ball":
            if hp["momentum"] <= 0 or hp["dampening"] != 0:
                raise ValueError(
                    f"{self.name}: nesterov=True requires momentum > 0 and dampening = 0 "
                    f"(got momentum={hp['momentum']!r}, dampening={hp['dampening']!r})"
                )


_REGISTRY: dict[str, RuleSpec] = {}


def register(spec: RuleSpec) -> RuleSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"rule {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_rule(name: str) -> RuleSpec:
    if not isinstance(name, str) or name.lower() not in _REGISTRY:
        raise ValueError(
            f"unknown optimizer {name!r}; {close_matches(str(name).lower(), _REGISTRY)}"
            f"available: {', '.join(available())}"
        )
    return _REGISTRY[name.lower()]


def available() -> list[str]:
    """Names of every registered rule, in registration order."""
    return list(_REGISTRY)


def info(name: str) -> RuleSpec:
    """The metadata of a rule: ``.paper``, ``.defaults``, ``.provenance``, ``.stages()``,
    ``.homogeneity``, ``.momentum_kind``, ``.decay``, ``.projected``."""
    return get_rule(name)


def create(name: str, params, **hyperparams):
    """Build a ``torch.optim.Optimizer`` running the named rule on ``params``.

    ``hyperparams`` override the rule's defaults (see ``info(name).defaults``); parameter groups
    may override them per group and may set ``replica_dims``. ``nonfinite`` ('raise', 'skip' or
    'ignore') sets what a step does with a NaN/Inf gradient.
    """
    from .optimizer import RuleOptimizer

    return RuleOptimizer(params, get_rule(name), **hyperparams)

"""The registry of named update rules: ``register``, ``create``, ``available``, ``info``.

A rule is a :class:`RuleSpec`: a builder that composes its chain of stages from the rule's
structural flags (``project``, ``decoupled``, ...), the defaults the rule restates (with their
source), and its paper. Everything else is DERIVED from the chain:

- the hyperparameters (validation, default, provenance): the flags plus every hyperparameter a
  stage of any of its chains declares, with the rule's restated defaults;
- the metadata the lab reads (``homogeneity``, ``momentum_kind``, ``decay``, ``projected``) and the
  theory traits (:func:`sandbox.optim.traits.rule_traits`): from the stages' declared traits.

Registration refuses a stage that declares no traits, a restated default no stage reads, and a
default without a source.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Callable, Mapping

from .hyper import ADAPTER_HYPERS, REQUIRED, Hyper, close_matches, validate
from .stages import Stage


@dataclass(frozen=True)
class RuleSpec:
    """A named rule: a chain builder, its structural flags, and restated defaults.

    ``build(hp)`` returns the chain for the hyperparameters ``hp`` (it may read only the flags).
    ``flags``: the structural :func:`~sandbox.optim.hyper.flag` records (each value of each flag
    may give another chain). ``defaults``: ``{name: (default, source)}`` for hyperparameters whose
    default or provenance the rule states (every hyperparameter needs a source, from the rule or
    from the stage that declares it).
    """

    name: str
    summary: str
    paper: str
    build: Callable[[Mapping[str, Any]], tuple[Stage, ...]]
    flags: tuple[Hyper, ...] = ()
    defaults_from: Mapping[str, tuple[Any, str]] = field(default_factory=dict)
    reference: str = ""
    base: str | None = None  # for a projected variant: the base rule's name

    # --- derived from the chain ----------------------------------------------------------------
    def chains(self) -> list[tuple[Stage, ...]]:
        """The chain for every combination of the flags' values."""
        names = [f.name for f in self.flags]
        return [self.build(dict(zip(names, values)))
                for values in itertools.product((False, True), repeat=len(names))]

    @cached_property
    def hypers(self) -> tuple[Hyper, ...]:
        seen: dict[str, Hyper] = {f.name: f for f in self.flags}
        seen.update((h.name, h) for h in ADAPTER_HYPERS)
        for stages in self.chains():
            for stage in stages:
                for h in stage.hypers:
                    seen.setdefault(h.name, h)
        out = []
        for name, h in seen.items():
            if name in self.defaults_from:
                default, source = self.defaults_from[name]
                h = replace(h, default=default, source=source)
            out.append(h)
        return tuple(out)

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

    def chain_key(self, hp: Mapping[str, Any]) -> tuple:
        """What decides the chain: the flags' values."""
        return tuple(bool(hp.get(f.name, f.default)) for f in self.flags)

    @property
    def projected(self) -> bool:
        return any(s.traits.projects for s in self.stages())

    @property
    def homogeneity(self) -> float:
        from .traits import chain_degree
        return chain_degree(self.stages())

    @property
    def momentum_kind(self) -> str:
        """The kind of the chain's first temporal filter: 'heavy_ball', 'ema', 'adaptive' or
        'none' (whatever its coefficient: sgd with momentum=0 is still a heavy-ball rule)."""
        kinds = [s.traits.momentum for s in self.stages() if s.traits.momentum]
        return kinds[0] if kinds else "none"

    @property
    def decay(self) -> str:
        """'coupled' (the decay passes through a filter or preconditioner), 'decoupled', 'none'."""
        from .traits import decay_placement
        return decay_placement(self.stages())[0]

    def validate(self, values: Mapping[str, Any]) -> None:
        validate(self.name, self.hyper_map, values)
        hp = {**self.defaults, **values}
        if hp.get("nesterov") and "momentum" in hp and "dampening" in hp and self.momentum_kind == "heavy_ball":
            if hp["momentum"] <= 0 or hp["dampening"] != 0:
                raise ValueError(
                    f"{self.name}: nesterov=True requires momentum > 0 and dampening = 0 "
                    f"(got momentum={hp['momentum']!r}, dampening={hp['dampening']!r})"
                )

    def check_declarations(self) -> None:
        """Refuse undeclared stages, restated defaults that no stage reads, missing sources."""
        for stages in self.chains():
            for s in stages:
                if getattr(s, "traits", None) is None:
                    raise TypeError(
                        f"rule {self.name!r}: stage {s.name!r} ({type(s).__name__}) declares no "
                        f"traits; give it `traits = StageTraits(...)` (its homogeneity map, "
                        f"momentum, decay, projection) so the rule's metadata can be derived")
        names = {h.name for h in self.hypers}
        unknown = sorted(set(self.defaults_from) - names)
        if unknown:
            raise ValueError(f"rule {self.name!r} restates defaults of {unknown}, which no stage "
                             f"of its chains reads; declared: {sorted(names)}")
        missing = [h.name for h in self.hypers if not h.source]
        if missing:
            raise ValueError(f"rule {self.name!r}: no source for the default of {missing}; "
                             f"restate them in defaults_from with their provenance")


_REGISTRY: dict[str, RuleSpec] = {}


def register(spec: RuleSpec) -> RuleSpec:
    """Add a rule to the registry (after checking its declarations); returns it."""
    if not isinstance(spec.name, str) or not spec.name or spec.name != spec.name.lower():
        raise ValueError(f"a rule's name must be a non-empty lower-case string, got {spec.name!r}")
    if spec.name in _REGISTRY:
        raise ValueError(f"rule {spec.name!r} is already registered")
    spec.check_declarations()
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a rule (for a user re-running a notebook cell that registers one)."""
    _REGISTRY.pop(name, None)


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
    ``.homogeneity``, ``.momentum_kind``, ``.decay``, ``.projected`` (all derived from its chain)."""
    return get_rule(name)


def create(name: str, params, **hyperparams):
    """Build a ``torch.optim.Optimizer`` running the named rule on ``params``.

    ``hyperparams`` override the rule's defaults (see ``info(name).defaults``); parameter groups
    may override them per group and may set ``replica_dims``. ``nonfinite`` ('raise', 'skip' or
    'ignore') sets what a step does with a NaN/Inf gradient.
    """
    from .optimizer import RuleOptimizer

    return RuleOptimizer(params, get_rule(name), **hyperparams)


__all__ = ["RuleSpec", "register", "unregister", "get_rule", "available", "info", "create", "REQUIRED"]

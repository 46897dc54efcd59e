"""A hand-written table of the theory traits of the sandbox's named rules (a test fixture).

The package derives traits from the registry (``sandbox.optim.traits.rule_traits`` reads each rule's
stage chain); this independent table written from the papers lets the pure-numpy theory tests
name rules, and ``tests/test_family_asymptotes.py`` checks the two agree for every rule.

``traits_for(name, **hyperparams)`` mirrors ``sandbox.create(name, ...)`` defaults; it only
reads the hyperparameters that change the traits (betas/momentum, dampening, nesterov,
project, project_momentum). Hyperparameters that enter the predictions as numbers (lr,
weight_decay, wd_ratio) are passed to the prediction functions instead.
"""
from __future__ import annotations

from theory.homogeneity import RuleTraits

_BASES = ("sgd", "adam", "adamw", "sgdp", "adamp", "adai", "adaiw", "rfadamw", "rfrmsprop")


def available_rules() -> list[str]:
    """Names accepted by traits_for (the sandbox names, including the '+p' variants)."""
    extra = ["adaip", "adaiwp", "rfadamwp", "rfrmspropp"]
    return list(_BASES) + extra


def traits_for(name: str, **hp) -> RuleTraits:
    """RuleTraits of a sandbox rule at the given hyperparameters.

    Notes on the less obvious entries:
    - sgd: heavy ball with torch's dampening/nesterov, coupled L2 (inside the momentum).
    - sgdp: heavy ball, projected, decoupled decay scaled by 1/(1-momentum) (decay_scale);
      the official code projects the stored buffer in place unless nesterov
      (project_buffer); project_momentum=False gives timm's behaviour.
    - adai/adaiw: k = 1 with an EMA whose per-element beta1 = clamp(1 - beta0 v_i/v_bar).
      The traits use the isotropic value beta1 = 1 - beta0 (v_i = v_bar), a heuristic:
      Adai's predictions are open (see theory.equilibrium).
    - rfrmsprop: the L2 term is added after preconditioning, inside the heavy ball
      (coupled, l2_preconditioned=False). rfadamw: decoupled.
    - projection stage on a rule with coupled L2 (adaip): the L2 term is radial and gets
      projected away (theory.equilibrium.effective_decay returns 0).
    """
    key = name.lower()
    project = bool(hp.get("project", False))
    if key in ("adaip", "adaiwp", "rfadamwp", "rfrmspropp"):
        key, project = key[:-1], True
    if key not in _BASES:
        raise KeyError(f"unknown rule {name!r}; known: {available_rules()}")
    betas = hp.get("betas")
    if key == "sgd":
        mom = float(hp.get("momentum", 0.0))
        return RuleTraits(1, mom, "heavy_ball" if mom > 0 else "none", project, "coupled",
                          dampening=float(hp.get("dampening", 0.0)),
                          nesterov=bool(hp.get("nesterov", False)), name=key)
    if key in ("adam", "adamw", "adamp"):
        b1 = float((betas or (0.9, 0.999))[0])
        return RuleTraits(0, b1, "ema", project or key == "adamp",
                          "coupled" if key == "adam" else "decoupled", name=key)
    if key == "sgdp":
        mom = float(hp.get("momentum", 0.0))
        nest = bool(hp.get("nesterov", False))
        return RuleTraits(1, mom, "heavy_ball" if mom > 0 else "none", True, "decoupled",
                          dampening=float(hp.get("dampening", 0.0)), nesterov=nest,
                          decay_scale=1.0 / (1.0 - mom),
                          project_buffer=bool(hp.get("project_momentum", True)) and not nest,
                          name=key)
    if key in ("adai", "adaiw"):
        b0 = float((betas or (0.1, 0.99))[0])
        decoupled = key == "adaiw" or bool(hp.get("decoupled", False))
        return RuleTraits(1, 1.0 - b0, "ema", project,
                          "decoupled" if decoupled else "coupled", adaptive_inertia=True,
                          name=key)
    if key == "rfadamw":
        b1 = float((betas or (0.9, 0.999))[0])
        return RuleTraits(-1, b1, "ema", project, "decoupled", name=key)
    mom = float(hp.get("momentum", 0.961))
    return RuleTraits(-1, mom, "heavy_ball" if mom > 0 else "none", project, "coupled",
                      l2_preconditioned=False, name=key)

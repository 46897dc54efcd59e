"""The theory traits of a registered rule, read off its stage chain (no table of names).

``theory`` is pure numpy and knows rules only through :class:`theory.RuleTraits`
(homogeneity k, momentum kind and coefficient, projection, decay coupling, ...). This module
builds those traits for ANY registered rule from ``sandbox.info(name)`` and the chain its
hyperparameters compose, so a new rule added to the registry gets the §2/§3 predictions without
new theory code wherever the theory covers its traits:

- k: ``RuleSpec.homogeneity``;
- momentum: a ``heavy_ball`` stage (coefficient ``momentum``, ``dampening``, ``nesterov``), an
  EMA inside ``scale_by_adam``/``scale_by_rootfree_adam`` (``betas[0]``), or Adai's
  ``adaptive_inertia`` (EMA at the isotropic value β1 = 1 − β0, flagged ``adaptive_inertia``);
- projection: a ``radial_projection`` stage; it also projects the stored buffer when it directly
  follows a non-Nesterov heavy ball and ``project_momentum`` is on (official SGDP);
- decay: ``add_decayed_weights`` BEFORE the momentum filter is coupled L2 (it passes through
  the filter), after it decoupled; coupled L2 placed after the preconditioner (root-free
  RMSProp) is not preconditioned; the SGDP scaling 1/(1 − momentum) gives ``decay_scale``.
"""
from __future__ import annotations

from theory import RuleTraits

_FILTERS = ("heavy_ball", "scale_by_adam", "scale_by_rootfree_adam", "adaptive_inertia")
_PRECONDITIONERS = ("scale_by_adam", "scale_by_rootfree_adam", "precondition_rootfree")


def rule_traits(name: str, projection_active: bool = True, **hp) -> RuleTraits:
    """:class:`theory.RuleTraits` of the registered rule ``name`` at hyperparameters ``hp``.

    ``projection_active=False`` describes a projected rule where the projection cannot act
    (vector weights, a loss that is not scale-invariant): it then runs as its base rule.

    >>> rule_traits("sgdp", lr=0.1, momentum=0.9).decay_scale   # 1/(1 - 0.9)
    10.000000000000002
    """
    import sandbox

    spec = sandbox.info(name)
    full = {**spec.defaults, **hp}
    stages = spec.stages(full)
    names = [s.name for s in stages]
    kind, beta, damp, nesterov, adaptive = "none", 0.0, 0.0, False, False
    for s in stages:
        if s.name == "heavy_ball":
            kind, beta = "heavy_ball", float(full["momentum"])
            damp, nesterov = float(full.get("dampening", 0.0)), bool(full.get("nesterov", False))
        elif s.name in ("scale_by_adam", "scale_by_rootfree_adam"):
            kind, beta = "ema", float(full["betas"][0])
        elif s.name == "adaptive_inertia":
            kind, beta, adaptive = "ema", 1.0 - float(full["betas"][0]), True
    if beta == 0.0:
        kind = "none"
    projected = "radial_projection" in names and projection_active
    project_buffer = False
    if projected and kind == "heavy_ball" and not nesterov:
        i = names.index("radial_projection")
        project_buffer = names[i - 1] == "heavy_ball" and bool(full.get("project_momentum", False))
    decay, decay_scale, l2_pre = "none", 1.0, True
    if "add_decayed_weights" in names:
        i_dec = names.index("add_decayed_weights")
        i_filter = min((names.index(f) for f in _FILTERS if f in names), default=len(names))
        decay = "coupled" if i_dec < i_filter else "decoupled"
        pre = [names.index(p) for p in _PRECONDITIONERS if p in names]
        l2_pre = not (decay == "coupled" and pre and min(pre) < i_dec)
        if getattr(stages[i_dec], "sgdp_scaling", False):
            decay_scale = 1.0 / (1.0 - float(full["momentum"]))
    return RuleTraits(homogeneity=spec.homogeneity, momentum=beta, momentum_kind=kind,
                      projected=projected, decay=decay, dampening=damp, nesterov=nesterov,
                      decay_scale=decay_scale, l2_preconditioned=l2_pre,
                      project_buffer=project_buffer, adaptive_inertia=adaptive, name=spec.name)

"""What the rule files share: provenance strings, the projection flag and stage, projected variants.

How the projection's ``wd_ratio`` meets each base rule's weight decay: the projection stage sits
where the rule's direction is complete, before any decoupled decay. So ``wd_ratio`` scales a
DECOUPLED decay (adamw→adamp, sgdp, adaiw+P, rfadamw+P) exactly as in AdamP/SGDP. A COUPLED L2
term (sgd, adam, adai, and root-free RMSProp's post-preconditioning L2) is part of the direction
that gets projected: ``wd_ratio`` does not touch it, and the projection removes its radial part
(only what momentum/preconditioning turned tangential survives), so on projected tensors coupled
L2 barely shrinks the norm. Use a decoupled rule when the decay should act on projected weights.
"""
from __future__ import annotations

from typing import Any, Mapping

from .. import hyper as H
from ..registry import RuleSpec, register
from ..stages import radial_projection

TORCH = "torch.optim default (PyTorch 2.x)"
ADAMP = "official adamp 0.3.0 / Heo et al., ICLR 2021"
ADAI = "official Adai code / Xie et al., ICML 2022"
RF = "Lin et al., ICML 2024 (authors' code)"
RF_TUNED = "Lin et al., ICML 2024: tuned for ResNet-34 / CIFAR-100, batch 128"
PAPER_ADAMP = "Heo et al., 'AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights', ICLR 2021"
PAPER_ADAI = "Xie et al., 'Adaptive Inertia: Disentangling the Effects of Adaptive Learning Rate and Momentum', ICML 2022"
PAPER_RF = "Lin et al., 'Can We Remove the Square-Root in Adaptive Gradient Methods? A Second-Order Perspective', ICML 2024"


def project_flag(default: bool = False) -> H.Hyper:
    """The ``project`` flag: adds the radial projection (one stage for every base rule)."""
    h = H.PROJECTION_HYPERS[0]
    return H.flag("project", default, h.doc, h.source, structural=True)


def projection(hp: Mapping[str, Any], eps_key: str = "proj_eps"):
    """The radial-projection stage when ``project`` is on."""
    return radial_projection(eps_key) if hp["project"] else None


# Sources of the projection's own defaults, for every rule that can project.
PROJECTION_DEFAULTS = {h.name: (h.default, h.source) for h in H.PROJECTION_HYPERS if h.name != "project"}


def _variants(spec: RuleSpec, projected_name: str) -> None:
    """Register a base rule and its projected form under ``projected_name``. (SGD's and Adam's
    projected forms are the papers' own rules, registered as ``sgdp`` and ``adamp``; a plain
    ``create("sgd", ..., project=True)`` is torch's SGD with the projection stage added.)"""
    register(spec)
    flags = tuple(project_flag(True) if f.name == "project" else f for f in spec.flags)
    register(RuleSpec(
        name=projected_name, summary=f"{spec.summary} + radial projection",
        paper=f"{spec.paper}; projection: {PAPER_ADAMP}", build=spec.build, flags=flags,
        defaults_from=spec.defaults_from, reference=spec.reference, base=spec.name,
    ))



"""The catalogue of named rules: each is a chain of stages that reads like its paper's equations.

A rule states its chain, its structural flags and the defaults its paper gives (with their
source); its hyperparameters, metadata and theory traits are derived from the chain
(:mod:`sandbox.optim.registry`). A user's own rule is registered the same way, from any module.

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

from . import hyper as H
from .registry import RuleSpec, register
from .stages import (
    adaptive_inertia, add_decayed_weights, chain, heavy_ball, precondition_rootfree,
    radial_projection, scale_by_adam, scale_by_lr, scale_by_rootfree_adam,
)

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


# --- SGD family ---------------------------------------------------------------------------------
def _sgd(hp):
    # torch.optim.SGD: g + λθ (coupled L2) → heavy ball (b_1 = g) → [projection] → −lr
    return chain(add_decayed_weights(), heavy_ball("momentum_buffer", first="input"),
                 projection(hp), scale_by_lr())


register(RuleSpec(
    name="sgd", summary="SGD with heavy-ball momentum, dampening, Nesterov and coupled L2",
    paper="Robbins & Monro 1951; Polyak 1964; Sutskever et al., ICML 2013",
    build=_sgd, flags=(project_flag(False),),
    defaults_from={"lr": (1e-3, TORCH), "momentum": (0.0, TORCH), "dampening": (0.0, TORCH),
                   "weight_decay": (0.0, TORCH + "; coupled L2: g ← g + λθ"),
                   "nesterov": (False, TORCH), **PROJECTION_DEFAULTS},
    reference="torch.optim.SGD",
))


def _sgdp(hp):
    # official SGDP: heavy ball (b_0 = 0) → projection (in place into b without Nesterov)
    #                → decoupled decay λ·wd_ratio/(1−μ) → −lr
    return chain(heavy_ball("momentum", first="zeros"), projection(hp, "eps"),
                 add_decayed_weights(scale_by_inverse_one_minus_momentum=True), scale_by_lr())


register(RuleSpec(
    name="sgdp", summary="SGD with momentum + radial projection (official SGDP)", paper=PAPER_ADAMP,
    build=_sgdp, flags=(project_flag(True),),
    defaults_from={"lr": (H.REQUIRED, ADAMP), "momentum": (0.0, ADAMP), "dampening": (0.0, ADAMP),
                   "weight_decay": (0.0, ADAMP + "; decoupled, θ ← θ(1 − lr·λ·factor/(1 − momentum))"),
                   "nesterov": (False, ADAMP), "eps": (1e-8, ADAMP),
                   "delta": PROJECTION_DEFAULTS["delta"], "wd_ratio": PROJECTION_DEFAULTS["wd_ratio"],
                   "project_momentum": (True, "adamp 0.3.0 SGDP: the in-place projection of the buffer")},
    reference="adamp.SGDP (0.3.0)",
))


# --- Adam family --------------------------------------------------------------------------------
def _adam(hp):
    # torch.optim.Adam: g + λθ (coupled L2) → Adam moments → [projection] → −lr
    return chain(add_decayed_weights(), scale_by_adam(), projection(hp, "eps"), scale_by_lr())


def _adamw(hp):
    # torch.optim.AdamW / official AdamP: Adam moments → [projection] → decoupled decay → −lr
    return chain(scale_by_adam(), projection(hp, "eps"), add_decayed_weights(), scale_by_lr())


_ADAM = {"lr": (1e-3, TORCH), "betas": ((0.9, 0.999), TORCH), "eps": (1e-8, TORCH),
         "amsgrad": (False, TORCH), "nesterov": (False, ADAMP + " (its Nesterov form)"),
         "delta": PROJECTION_DEFAULTS["delta"], "wd_ratio": PROJECTION_DEFAULTS["wd_ratio"],
         "project_momentum": PROJECTION_DEFAULTS["project_momentum"]}
register(RuleSpec(
    name="adam", summary="Adam with coupled L2", paper="Kingma & Ba, 'Adam', ICLR 2015",
    build=_adam, flags=(project_flag(False),),
    defaults_from={**_ADAM, "weight_decay": (0.0, TORCH + "; coupled L2: g ← g + λθ")},
    reference="torch.optim.Adam",
))
register(RuleSpec(
    name="adamw", summary="Adam with decoupled weight decay",
    paper="Loshchilov & Hutter, 'Decoupled Weight Decay Regularization', ICLR 2019",
    build=_adamw, flags=(project_flag(False),),
    defaults_from={**_ADAM, "weight_decay": (1e-2, TORCH + "; decoupled: θ ← θ(1 − lr·λ·factor)")},
    reference="torch.optim.AdamW",
))
register(RuleSpec(
    name="adamp", summary="AdamW + radial projection (official AdamP)", paper=PAPER_ADAMP,
    build=_adamw, flags=(project_flag(True),),
    defaults_from={**_ADAM, "lr": (1e-3, ADAMP), "betas": ((0.9, 0.999), ADAMP),
                   "eps": (1e-8, ADAMP), "nesterov": (False, ADAMP),
                   "weight_decay": (0.0, ADAMP + "; decoupled: θ ← θ(1 − lr·λ·factor)")},
    reference="adamp.AdamP (0.3.0)", base="adamw",
))


# --- Adai ---------------------------------------------------------------------------------------
def _adai(hp):
    # Adai: [g + λθ] → adaptive inertia (two passes) → [projection] → [decoupled decay] → −lr
    if hp["decoupled"]:
        return chain(adaptive_inertia(), projection(hp), add_decayed_weights(), scale_by_lr())
    return chain(add_decayed_weights(), adaptive_inertia(), projection(hp), scale_by_lr())


_ADAI = {"lr": (H.REQUIRED, ADAI + " (SGD-scale; e.g. 0.1-1.0)"), "betas": ((0.1, 0.99), ADAI),
         "eps": (1e-3, ADAI), "weight_decay": (0.0, ADAI + "; decoupled (AdaiW) or coupled L2 (Adai)"),
         **PROJECTION_DEFAULTS}
for _name, _dec in (("adai", False), ("adaiw", True)):
    _variants(RuleSpec(
        name=_name, summary="Adaptive inertia" + (" with decoupled decay" if _dec else ""),
        paper=PAPER_ADAI, build=_adai,
        flags=(H.flag("decoupled", _dec, "decoupled weight decay (AdaiW)", ADAI, structural=True),
               project_flag(False)),
        defaults_from=_ADAI, reference="zeke-xie/adaptive-inertia-adai Adai/AdaiW",
    ), _name + "p")


# --- Root-free ----------------------------------------------------------------------------------
def _rfadamw(hp):
    # θ(1 − lr·λ) and m/(B·v + damping): root-free moments → [projection] → decoupled decay → −lr
    return chain(scale_by_rootfree_adam(), projection(hp), add_decayed_weights(), scale_by_lr())


def _rfrmsprop(hp):
    # d = g/(B·v + damping) + λθ → heavy ball (b_0 = 0, no dampening) → [projection] → −lr
    return chain(precondition_rootfree(), add_decayed_weights(),
                 heavy_ball("momentum_buffer", first="zeros"), projection(hp), scale_by_lr())


_variants(RuleSpec(
    name="rfadamw", summary="Root-free AdamW (no square root; preconditioner B·v)", paper=PAPER_RF,
    build=_rfadamw, flags=(project_flag(False),),
    defaults_from={"lr": (1e-3, RF), "betas": ((0.9, 0.999), RF), "eps": (1e-4, RF),
                   "weight_decay": (0.0, RF + "; decoupled: θ ← θ(1 − lr·λ·factor)"),
                   "batch_size": (H.REQUIRED, RF), "bias_correction": (False, RF),
                   **PROJECTION_DEFAULTS},
    reference="hand-computed from the paper's equations",
), "rfadamwp")
_variants(RuleSpec(
    name="rfrmsprop", summary="Root-free RMSProp with heavy-ball momentum", paper=PAPER_RF,
    build=_rfrmsprop, flags=(project_flag(False),),
    defaults_from={"lr": (4.98e-3, RF_TUNED), "momentum": (0.961, RF_TUNED),
                   "lr_cov": (1.18e-3, RF_TUNED), "eps": (1e-4, RF),
                   "weight_decay": (0.0, RF + "; L2 added after preconditioning: d = g/(B·v + λ) + wd·θ"),
                   "batch_size": (H.REQUIRED, RF), "dampening": (0.0, RF + " (no dampening)"),
                   "nesterov": (False, RF + " (heavy ball, no Nesterov)"), **PROJECTION_DEFAULTS},
    reference="hand-computed from the paper's equations",
), "rfrmspropp")

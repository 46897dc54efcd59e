"""The catalogue of named rules: each is a chain of stages that reads like its paper's equations.

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


def projection(hp: Mapping[str, Any], eps_key: str = "proj_eps"):
    """The radial-projection stage when ``project`` is on (one stage for every base rule)."""
    return radial_projection(eps_key) if hp["project"] else None


def _projection_hypers(on: bool, shares_eps: bool = False, project_momentum: bool = False):
    """The projection's hyperparameters; ``proj_eps`` only where the rule's eps is not shared."""
    out = []
    for h in H.PROJECTION_HYPERS:
        if h.name in ("project", "project_momentum"):
            h = H.flag(h.name, on if h.name == "project" else project_momentum, h.doc, h.source)
        if h.name == "proj_eps" and shares_eps:
            continue
        out.append(h)
    return tuple(out)


def _variants(spec: RuleSpec, projected_name: str) -> None:
    """Register a base rule and its projected form under ``projected_name``. (SGD's and Adam's
    projected forms are the papers' own rules, registered as ``sgdp`` and ``adamp``; a plain
    ``create("sgd", ..., project=True)`` is torch's SGD with the projection stage added.)"""
    register(spec)
    hypers = tuple(
        H.flag("project", True, h.doc, h.source) if h.name == "project" else h for h in spec.hypers
    )
    register(RuleSpec(
        name=projected_name, summary=f"{spec.summary} + radial projection",
        paper=f"{spec.paper}; projection: {PAPER_ADAMP}", hypers=hypers, build=spec.build,
        homogeneity=spec.homogeneity, momentum_kind=spec.momentum_kind, decay=spec.decay,
        reference=spec.reference, base=spec.name,
    ))


# --- SGD family ---------------------------------------------------------------------------------
def _sgd(hp):
    # torch.optim.SGD: g + λθ (coupled L2) → heavy ball (b_1 = g) → [projection] → −lr
    return chain(add_decayed_weights(), heavy_ball("momentum_buffer", first="input"),
                 projection(hp), scale_by_lr())


register(RuleSpec(
    name="sgd", summary="SGD with heavy-ball momentum, dampening, Nesterov and coupled L2",
    paper="Robbins & Monro 1951; Polyak 1964; Sutskever et al., ICML 2013",
    hypers=(H.lr(1e-3, TORCH), H.momentum(0.0, TORCH), H.dampening(0.0, TORCH),
            H.weight_decay(0.0, TORCH, "coupled L2: g ← g + λθ"),
            H.flag("nesterov", False, "Nesterov momentum", TORCH)) + _projection_hypers(False),
    build=_sgd, homogeneity=1, momentum_kind="heavy_ball", decay="coupled",
    reference="torch.optim.SGD",
))


def _sgdp(hp):
    # official SGDP: heavy ball (b_0 = 0) → projection (in place into b without Nesterov)
    #                → decoupled decay λ·wd_ratio/(1−μ) → −lr
    return chain(heavy_ball("momentum", first="zeros"), projection(hp, "eps"),
                 add_decayed_weights(scale_by_inverse_one_minus_momentum=True), scale_by_lr())


register(RuleSpec(
    name="sgdp", summary="SGD with momentum + radial projection (official SGDP)", paper=PAPER_ADAMP,
    hypers=(H.lr(H.REQUIRED, ADAMP), H.momentum(0.0, ADAMP), H.dampening(0.0, ADAMP),
            H.weight_decay(0.0, ADAMP, "decoupled, θ ← θ(1 − lr·λ·factor/(1 − momentum))"),
            H.flag("nesterov", False, "Nesterov momentum", ADAMP),
            H.eps(1e-8, ADAMP, "eps of the projection's norms and cosines"))
    + _projection_hypers(True, shares_eps=True, project_momentum=True),
    build=_sgdp, homogeneity=1, momentum_kind="heavy_ball", decay="decoupled",
    reference="adamp.SGDP (0.3.0)",
))


# --- Adam family --------------------------------------------------------------------------------
def _adam(hp):
    # torch.optim.Adam: g + λθ (coupled L2) → Adam moments → [projection] → −lr
    return chain(add_decayed_weights(), scale_by_adam(), projection(hp, "eps"), scale_by_lr())


def _adamw(hp):
    # torch.optim.AdamW / official AdamP: Adam moments → [projection] → decoupled decay → −lr
    return chain(scale_by_adam(), projection(hp, "eps"), add_decayed_weights(), scale_by_lr())


_ADAM_HYPERS = (H.lr(1e-3, TORCH), H.betas((0.9, 0.999), TORCH), H.eps(1e-8, TORCH))
register(RuleSpec(
    name="adam", summary="Adam with coupled L2", paper="Kingma & Ba, 'Adam', ICLR 2015",
    hypers=_ADAM_HYPERS + (H.weight_decay(0.0, TORCH, "coupled L2: g ← g + λθ"),)
    + _projection_hypers(False, shares_eps=True),
    build=_adam, homogeneity=0, momentum_kind="ema", decay="coupled", reference="torch.optim.Adam",
))
register(RuleSpec(
    name="adamw", summary="Adam with decoupled weight decay",
    paper="Loshchilov & Hutter, 'Decoupled Weight Decay Regularization', ICLR 2019",
    hypers=_ADAM_HYPERS + (H.weight_decay(1e-2, TORCH, "decoupled: θ ← θ(1 − lr·λ·factor)"),
                           H.flag("nesterov", False, "AdamP's Nesterov form", ADAMP))
    + _projection_hypers(False, shares_eps=True),
    build=_adamw, homogeneity=0, momentum_kind="ema", decay="decoupled",
    reference="torch.optim.AdamW",
))
register(RuleSpec(
    name="adamp", summary="AdamW + radial projection (official AdamP)", paper=PAPER_ADAMP,
    hypers=(H.lr(1e-3, ADAMP), H.betas((0.9, 0.999), ADAMP), H.eps(1e-8, ADAMP),
            H.weight_decay(0.0, ADAMP, "decoupled: θ ← θ(1 − lr·λ·factor)"),
            H.flag("nesterov", False, "Nesterov form (β1 m + (1−β1) g)/denom", ADAMP))
    + _projection_hypers(True, shares_eps=True),
    build=_adamw, homogeneity=0, momentum_kind="ema", decay="decoupled",
    reference="adamp.AdamP (0.3.0)", base="adamw",
))


# --- Adai ---------------------------------------------------------------------------------------
def _adai(hp):
    # Adai: [g + λθ] → adaptive inertia (two passes) → [projection] → [decoupled decay] → −lr
    if hp["decoupled"]:
        return chain(adaptive_inertia(), projection(hp), add_decayed_weights(), scale_by_lr())
    return chain(add_decayed_weights(), adaptive_inertia(), projection(hp), scale_by_lr())


def _adai_hypers(decoupled: bool):
    return (H.lr(H.REQUIRED, ADAI + " (SGD-scale; e.g. 0.1-1.0)"),
            H.betas((0.1, 0.99), ADAI, "(beta0, beta2): inertia scale and second-moment EMA"),
            H.eps(1e-3, ADAI, "inertia bound: beta1 <= 1 - eps"),
            H.weight_decay(0.0, ADAI, "decoupled (AdaiW) or coupled L2 (Adai)"),
            H.flag("decoupled", decoupled, "decoupled weight decay (AdaiW)", ADAI)) \
        + _projection_hypers(False)


for _name, _dec in (("adai", False), ("adaiw", True)):
    _variants(RuleSpec(
        name=_name, summary="Adaptive inertia" + (" with decoupled decay" if _dec else ""),
        paper=PAPER_ADAI, hypers=_adai_hypers(_dec), build=_adai, homogeneity=1,
        momentum_kind="adaptive", decay="decoupled" if _dec else "coupled",
        reference="zeke-xie/adaptive-inertia-adai Adai/AdaiW",
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
    hypers=(H.lr(1e-3, RF), H.betas((0.9, 0.999), RF),
            H.eps(1e-4, RF, "damping λ added to B·v (authors keep 0 < λ < 5e-4)"),
            H.weight_decay(0.0, RF, "decoupled: θ ← θ(1 − lr·λ·factor)"), H.batch_size(RF),
            H.flag("bias_correction", False, "Adam-style bias correction", RF))
    + _projection_hypers(False),
    build=_rfadamw, homogeneity=-1, momentum_kind="ema", decay="decoupled",
    reference="hand-computed from the paper's equations",
), "rfadamwp")
_variants(RuleSpec(
    name="rfrmsprop", summary="Root-free RMSProp with heavy-ball momentum", paper=PAPER_RF,
    hypers=(H.lr(4.98e-3, RF_TUNED), H.momentum(0.961, RF_TUNED), H.lr_cov(1.18e-3, RF_TUNED),
            H.eps(1e-4, RF, "damping λ added to B·v (authors keep 0 < λ < 5e-4)"),
            H.weight_decay(0.0, RF, "L2 added after preconditioning: d = g/(B·v + λ) + wd·θ"),
            H.batch_size(RF)) + _projection_hypers(False),
    build=_rfrmsprop, homogeneity=-1, momentum_kind="heavy_ball", decay="coupled",
    reference="hand-computed from the paper's equations",
), "rfrmspropp")

"""AdamC and SGDC: corrected weight decay on normalised tensors (Defazio 2025, "Why Gradients
Rapidly Increase Near the End of Training", arXiv 2506.02285).

AdamC is AdamW whose decoupled decay on normalised tensors is λ·γ_t²/γ_max·θ per step instead of
λ·γ_t·θ; SGDC is torch's SGD whose L2 coefficient on normalised tensors is λ·γ_t/γ_max (the
paper's analysis is SGD without momentum, where L2 and decoupled decay coincide; torch's SGD with
the L2 term inside the momentum is the form of its ImageNet runs and of this rule). Other tensors
keep the uncorrected decay. Which tensors are normalised comes from the user: the group key
``normalized`` (required; ``sandbox.probes.normalised_groups.normalised_param_groups(model)``
builds the groups from the architecture's ground truth). γ_max: see
:class:`sandbox.optim.stages.corrected_decay.corrected_decay`.
Reference: a step written from the paper in ``tests/parity/test_parity_corrected.py``; with a
constant lr both rules equal AdamW / torch SGD exactly (also tested).
"""
from __future__ import annotations

from ..registry import RuleSpec, register
from ..stages import chain, corrected_decay, heavy_ball, scale_by_adam, scale_by_lr
from .common import PROJECTION_DEFAULTS, TORCH, project_flag, projection

PAPER_C = "Defazio, 'Why Gradients Rapidly Increase Near the End of Training', arXiv 2506.02285, 2025"


def _adamc(hp):
    # Adam moments → [projection] → λ·(γ_t/γ_max on normalised tensors)·θ (decoupled) → −lr
    return chain(scale_by_adam(), projection(hp, "eps"), corrected_decay(), scale_by_lr())


def _sgdc(hp):
    # g + λ·(γ_t/γ_max on normalised tensors)·θ (L2) → heavy ball (torch) → [projection] → −lr
    return chain(corrected_decay(), heavy_ball("momentum_buffer", first="input"), projection(hp),
                 scale_by_lr())


register(RuleSpec(
    name="adamc", summary="AdamW with decay λγ_t²/γ_max on normalised tensors",
    paper=PAPER_C, build=_adamc, flags=(project_flag(False),),
    defaults_from={"lr": (1e-3, TORCH + " (AdamW)"), "betas": ((0.9, 0.999), TORCH),
                   "eps": (1e-8, TORCH), "weight_decay": (1e-2, TORCH + " (AdamW)"),
                   "amsgrad": (False, TORCH), "nesterov": (False, "AdamP's Nesterov form"),
                   **{k: v for k, v in PROJECTION_DEFAULTS.items() if k != "proj_eps"}},
    reference="paper step (tests/parity); AdamW at a constant lr",
))
register(RuleSpec(
    name="sgdc", summary="torch SGD with L2 λγ_t/γ_max on normalised tensors",
    paper=PAPER_C, build=_sgdc, flags=(project_flag(False),),
    defaults_from={"lr": (1e-3, TORCH + " (SGD)"), "momentum": (0.0, TORCH), "dampening": (0.0, TORCH),
                   "nesterov": (False, TORCH),
                   "weight_decay": (0.0, TORCH + "; coupled L2 with λ_t = λγ_t/γ_max on normalised tensors"),
                   **PROJECTION_DEFAULTS},
    reference="paper step (tests/parity); torch.optim.SGD at a constant lr",
))

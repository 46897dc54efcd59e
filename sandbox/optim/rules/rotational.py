"""Rotational variants RV-AdamW, RV-SGD, RV-Lion (Kosson, Messmer & Jaggi, ICML 2024, "Rotational
Equilibrium: How Weight Decay Balances Learning Across Neural Networks"; official code
epfml/rotational-optimizers, shared/optimizers/rotational_{adamw,sgd,lion}.py).

On rotational tensors (default: weight_decay > 0 and at least 2 axes after squeezing; group key
``rotational`` overrides) each neuron turns by the rule's equilibrium angular update ρ from the
first step and keeps its initial norm (see :mod:`sandbox.optim.stages.rotational`); other tensors
run the base rule (AdamW, torch-style SGD with coupled L2, Lion). The reference is the official
code, reproduced step by step in ``tests/parity/test_parity_rotational.py``. Divergences:

- ``rotational=True`` on a tensor the official code refuses (ValueError: a vector with
  per-neuron rotation, or λ = 0) runs the base rule here (a step cannot refuse part-way);
- a neuron whose recorded norm is 0 stays put (official: NaN);
- RV-Lion: the official code decides rotational-ness once per param group, from the group's last
  parameter, ignores its ``rotational`` argument, and uses the last parameter's step count for all;
  here every tensor is judged on its own (as the official RV-AdamW/RV-SGD do) and counts its own
  steps (equal when all tensors of a group step together and share the verdict); its
  ``is_linearized`` option is not implemented;
- RV-SGD's ``dampening`` and RV-AdamW's ``amsgrad``/``nesterov`` are torch/AdamP options the
  official code does not have (ρ assumes them off).
No projected forms are registered (the rotational step already removes the radial part of the
update on rotational tensors); ``project=True`` (default False, the official rule) adds AdamP's
projection to the base direction, which matters for the tensors that run the base rule.
"""
from __future__ import annotations

from .. import hyper as H
from ..registry import RuleSpec, register
from ..stages import chain, heavy_ball, rotate, rotational_decay, scale_by_adam, scale_by_lion
from ..stages.rotational import adam_direction_scale, rho_adamw, rho_lion, rho_sgd
from .common import PROJECTION_DEFAULTS, project_flag, projection

PAPER_RV = ("Kosson, Messmer & Jaggi, 'Rotational Equilibrium: How Weight Decay Balances Learning "
            "Across Neural Networks', ICML 2024")
RV = "official epfml/rotational-optimizers default (Kosson et al., ICML 2024)"
_ROT = {"rotational": (None, RV), "per_neuron": (True, RV + " (scale_invariance='channel')"),
        "scale_invariance_min_dim": (2, RV), "zero_mean": (True, RV),
        "update_norm_decay_factor": (0.99, RV)}


def _rvadamw(hp):
    # Adam moments → λθ on non-rotational tensors (decoupled) → rotational step / −lr
    return chain(scale_by_adam(), projection(hp, "eps"), rotational_decay(),
                 rotate(rho_adamw, own_step=False, direction_scale=adam_direction_scale))


def _rvsgd(hp):
    # g + λθ on non-rotational tensors (coupled) → heavy ball (torch) → rotational step / −lr
    return chain(rotational_decay(), heavy_ball("momentum_buffer", first="input"), projection(hp),
                 rotate(rho_sgd))


def _rvlion(hp):
    # sign(β1·m + (1−β1)·g) → λθ on non-rotational tensors (decoupled) → rotational step / −lr
    return chain(scale_by_lion(), projection(hp), rotational_decay(), rotate(rho_lion))


register(RuleSpec(
    name="rvadamw", summary="Rotational AdamW: per-neuron rotation sqrt(2ηλ(1−β1)/(1+β1)) from step 1",
    paper=PAPER_RV, build=_rvadamw, flags=(project_flag(False),),
    defaults_from={**{k: v for k, v in PROJECTION_DEFAULTS.items() if k != "proj_eps"}, "lr": (1e-3, RV), "betas": ((0.9, 0.999), RV), "eps": (1e-8, RV),
                   "weight_decay": (1e-2, RV), "amsgrad": (False, "torch.optim.Adam option (not official)"),
                   "nesterov": (False, "AdamP's Nesterov form (not official)"), **_ROT},
    reference="official RotationalAdamW (reference step in tests/parity)",
))
register(RuleSpec(
    name="rvsgd", summary="Rotational SGD: per-neuron rotation sqrt(2ηλ/(1+μ)) from step 1",
    paper=PAPER_RV, build=_rvsgd, flags=(project_flag(False),),
    defaults_from={**PROJECTION_DEFAULTS, "lr": (H.REQUIRED, RV + " (required)"), "momentum": (0.0, RV),
                   "dampening": (0.0, "torch.optim.SGD option (not official; ρ assumes 0)"),
                   "nesterov": (False, RV),
                   "weight_decay": (5e-4, "official RotationalSGD requires it (no default); 5e-4 is "
                                    "the authors' rvsgd CIFAR-100 ResNet-18 runs (experiments/poornorm)"),
                   **_ROT},
    reference="official RotationalSGD (reference step in tests/parity)",
))
register(RuleSpec(
    name="rvlion", summary="Rotational Lion: per-neuron rotation from step 1",
    paper=PAPER_RV + "; base rule: Chen et al., NeurIPS 2023 (Lion)", build=_rvlion,
    flags=(project_flag(False),),
    defaults_from={**PROJECTION_DEFAULTS, "lr": (1e-4, RV), "betas": ((0.9, 0.99), RV),
                   "weight_decay": (0.0, RV + " (no tensor rotates until λ > 0)"), **_ROT},
    reference="official RotationalLion (reference step in tests/parity)",
))

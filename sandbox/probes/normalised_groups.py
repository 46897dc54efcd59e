"""Param groups split by the architecture's ground truth of scale invariance, for the rules whose
decay depends on it (AdamC/SGDC's ``normalized`` key; Defazio 2025).

A "normalised" tensor is one whose loss is invariant to its scale because every use of it reaches
the loss through a normalisation (BatchNorm, LayerNorm, GroupNorm, ...):
:func:`sandbox.probes.architecture.scale_invariance_ground_truth` decides that from the module
graph (torch.fx, or forward hooks), never from a parameter's name.

>>> groups = normalised_param_groups(model, weight_decay=0.05)          # doctest: +SKIP
>>> opt = sandbox.create("adamc", groups, lr=1e-3)                      # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any, Optional

import torch.nn as nn

from .architecture import scale_invariance_ground_truth


def normalised_param_groups(model: nn.Module, example_input: Optional[Any] = None,
                            method: str = "auto", only_trainable: bool = True,
                            normalised: Optional[dict] = None, other: Optional[dict] = None,
                            **common) -> list[dict]:
    """Two param groups of ``model``: the scale-invariant (normalised) tensors with
    ``normalized=True`` and the rest with ``normalized=False``.

    ``example_input``/``method``: passed to the ground truth (the hooks fallback needs an input
    when torch.fx cannot trace the model). ``common``: hyperparameters of both groups;
    ``normalised`` / ``other``: extra hyperparameters of one group (e.g. ``other=dict(
    weight_decay=0)``). Parameters without ``requires_grad`` are left out when ``only_trainable``.
    A group with no parameters is omitted. Each group carries ``name`` ('normalised' or
    'other'); parameter names are only used to look the verdicts up.
    """
    verdicts = scale_invariance_ground_truth(model, example_input, method=method)
    inv, rest = [], []
    for name, p in model.named_parameters():
        if only_trainable and not p.requires_grad:
            continue
        (inv if verdicts[name].scale_invariant else rest).append(p)
    groups = []
    if inv:
        groups.append({"params": inv, "normalized": True, "name": "normalised", **common,
                       **(normalised or {})})
    if rest:
        groups.append({"params": rest, "normalized": False, "name": "other", **common,
                       **(other or {})})
    return groups


def normalised_flags(model: nn.Module, example_input: Optional[Any] = None,
                     method: str = "auto") -> dict[str, bool]:
    """``{parameter name: is it normalised}`` (the ground truth's verdicts, as booleans)."""
    return {n: v.scale_invariant
            for n, v in scale_invariance_ground_truth(model, example_input, method=method).items()}

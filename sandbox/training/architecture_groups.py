"""Param groups a rule needs from the architecture: the ``normalized`` flag of corrected weight
decay (AdamC/SGDC) comes from the model's module graph, never from a parameter's name.

A rule whose hyperparameters include ``normalized`` (a required group key: which tensors are
scale-invariant) gets two groups when the caller did not fix it: the parameters the ground truth
(:func:`sandbox.probes.runs.ground_truth`, torch.fx analysis cross-checked against the problem's
declaration) finds scale-invariant with ``normalized=True``, the others with ``False``. A value
given by the user (``hp['normalized']``) applies to every tensor, as they asked.
"""
from __future__ import annotations

from typing import Mapping

import sandbox

ARCHITECTURE_KEYS = ("normalized",)  # hyperparameters the training loop fills from the model


def needs_architecture(rule: str, hp: Mapping) -> bool:
    """Whether ``rule`` reads a key of :data:`ARCHITECTURE_KEYS` that ``hp`` leaves unset."""
    defaults = sandbox.info(rule).defaults
    return any(k in defaults and k not in hp for k in ARCHITECTURE_KEYS)


def architecture_param_groups(rule: str, hp: Mapping, named_params: Mapping, problem, model,
                              replica_dims: int = 0):
    """``named_params`` as param groups for ``sandbox.create``: split by the ground truth of
    ``model`` (a module with the same parameter names) when :func:`needs_architecture`, one group
    otherwise. ``replica_dims``: 1 for a stack of models (each tensor's leading replica axis)."""
    extra = {"replica_dims": replica_dims} if replica_dims else {}
    params = list(named_params.values())
    if not needs_architecture(rule, hp):
        return [{"params": params, **extra}]
    from sandbox.probes.runs import ground_truth

    truth = ground_truth(problem, model)
    missing = sorted(n for n in named_params if n not in truth)
    if missing:
        raise ValueError(f"{rule}: no scale-invariance verdict for {missing}: the model's graph does "
                         "not name these parameters; pass normalized=True/False per param group")
    groups = []
    for flag in (True, False):
        ps = [p for n, p in named_params.items() if truth[n] == flag]
        if ps:
            groups.append({"params": ps, "normalized": flag, **extra})
    return groups

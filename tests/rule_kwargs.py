"""Hyperparameters every rule needs to be constructible (imported by tests as `rule_kwargs`)."""
from __future__ import annotations

import torch

import sandbox
from sandbox.optim.hyper import REQUIRED

# Values for hyperparameters that have no default (the papers give none). ``normalized``: the
# corrected-decay rules (adamc, sgdc) must be told which groups are normalised.
REQUIRED_VALUES = {"lr": 0.05, "batch_size": 32, "normalized": True}


def rule_kwargs(name: str, **overrides) -> dict:
    """Keyword arguments that make ``sandbox.create(name, ...)`` valid, plus ``overrides``."""
    spec = sandbox.info(name)
    kw = {k: REQUIRED_VALUES[k] for k, v in spec.defaults.items() if v is REQUIRED}
    return {**kw, **overrides}


def make(name: str, params, **overrides):
    return sandbox.create(name, params, **rule_kwargs(name, **overrides))



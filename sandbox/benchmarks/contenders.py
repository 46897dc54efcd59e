"""Who is timed: the sandbox's rules and the implementations they are compared with.

Every contender is built on the same parameter list with matching hyperparameters (lr 1e-3,
weight decay 1e-2, momentum 0.9 for the SGD family, Adam's defaults otherwise), so the step does
the same amount of work in every implementation of a rule. ``state_arrays``: per-parameter state
tensors the rule reads and writes each step, for the minimum-traffic model of
:mod:`sandbox.benchmarks.bandwidth`. Implementations that are not installed are skipped (listed as
"not available" by the report).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

import sandbox

LR, WD, MOMENTUM = 1e-3, 1e-2, 0.9
BASELINE = "torch AdamW (fused)"
SGD_BASELINE = "torch SGD momentum (fused)"
CHECKED = "sandbox adamw, nonfinite check (default)"  # the others pass nonfinite="ignore"


@dataclass(frozen=True)
class Contender:
    name: str
    source: str  # 'sandbox', 'torch', 'adamp (official)', 'pytorch_optimizer'
    rule: str  # the rule it implements (sandbox name)
    make: Callable  # params -> optimizer
    state_arrays: int  # state tensors read and written per step


def _sandbox(rule: str, impl: str, **hp) -> Callable:
    return lambda ps: sandbox.create(rule, ps, nonfinite="ignore", impl=impl, **hp)


SANDBOX_HP = {
    "sgd": dict(lr=LR, momentum=MOMENTUM, weight_decay=WD),
    "sgdp": dict(lr=LR, momentum=MOMENTUM, weight_decay=WD),
    "adam": dict(lr=LR, weight_decay=WD),
    "adamw": dict(lr=LR, weight_decay=WD),
    "adamp": dict(lr=LR, weight_decay=WD),
    "adai": dict(lr=LR, weight_decay=WD),
    "rfadamw": dict(lr=LR, weight_decay=WD, batch_size=128),
}
STATE_ARRAYS = {"sgd": 1, "sgdp": 1, "adam": 2, "adamw": 2, "adamp": 2, "adai": 3, "rfadamw": 2}


def contenders(device: torch.device, reference: bool = True) -> tuple[list[Contender], list[str]]:
    """(the contenders available here, names of those that are not)."""
    out, missing = [], []
    for rule, hp in SANDBOX_HP.items():
        out.append(Contender(f"sandbox {rule}", "sandbox", rule, _sandbox(rule, "auto", **hp),
                             STATE_ARRAYS[rule]))
        if reference:
            out.append(Contender(f"sandbox {rule} (reference)", "sandbox", rule,
                                 _sandbox(rule, "reference", **hp), STATE_ARRAYS[rule]))
    # the default nonfinite="raise" adds one list norm and one host sync per step: timed once
    out.append(Contender(CHECKED, "sandbox", "adamw",
                         lambda ps: sandbox.create("adamw", ps, **SANDBOX_HP["adamw"]), STATE_ARRAYS["adamw"]))
    opt = torch.optim
    for kind in ("foreach", "fused"):
        flag = {kind: True}
        out += [
            Contender(f"torch SGD momentum ({kind})", "torch", "sgd",
                      lambda ps, f=flag: opt.SGD(ps, lr=LR, momentum=MOMENTUM, weight_decay=WD, **f), 1),
            Contender(f"torch Adam ({kind})", "torch", "adam",
                      lambda ps, f=flag: opt.Adam(ps, lr=LR, weight_decay=WD, **f), 2),
            Contender(f"torch AdamW ({kind})", "torch", "adamw",
                      lambda ps, f=flag: opt.AdamW(ps, lr=LR, weight_decay=WD, **f), 2),
        ]
    try:
        import adamp

        out += [Contender("official AdamP (adamp 0.3.0)", "adamp (official)", "adamp",
                          lambda ps: adamp.AdamP(ps, lr=LR, weight_decay=WD), 2),
                Contender("official SGDP (adamp 0.3.0)", "adamp (official)", "sgdp",
                          lambda ps: adamp.SGDP(ps, lr=LR, momentum=MOMENTUM, weight_decay=WD), 1)]
    except ImportError:
        missing += ["official AdamP (adamp 0.3.0)", "official SGDP (adamp 0.3.0)"]
    try:
        import pytorch_optimizer as po

        out += [Contender("pytorch-optimizer AdamP", "pytorch_optimizer", "adamp",
                          lambda ps: po.AdamP(ps, lr=LR, weight_decay=WD), 2),
                Contender("pytorch-optimizer SGDP", "pytorch_optimizer", "sgdp",
                          lambda ps: po.SGDP(ps, lr=LR, momentum=MOMENTUM, weight_decay=WD), 1),
                Contender("pytorch-optimizer Adai", "pytorch_optimizer", "adai",
                          lambda ps: po.Adai(ps, lr=LR, weight_decay=WD), 3)]
    except ImportError:
        missing += ["pytorch-optimizer AdamP", "pytorch-optimizer SGDP", "pytorch-optimizer Adai"]
    return out, missing

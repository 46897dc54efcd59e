"""The one table that drives the rule tests (in the style of torch's ``OptimizerInfo``).

For every registered rule: the values its required hyperparameters take in tests, its structural
cases (options that change the chain or the form it runs in), what it must equal (torch.optim or
the official package), and the fast form ``impl='auto'`` runs on CPU float32/float64 contiguous
tensors: ``'torch'`` (torch's own kernels), ``'kernel'`` (the family's fused kernel) or ``None``
(the stages). A rule registered without a row here fails ``test_every_rule_has_a_row``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch


@dataclass(frozen=True)
class Row:
    fast: Optional[str]  # 'torch', 'kernel' or None
    equivalent: str = ""  # what the parity tests hold it to
    # (extra hyperparameters, the fast form with them) for the structural options
    cases: tuple = field(default_factory=tuple)


TABLE: dict[str, Row] = {
    "sgd": Row("torch", "torch.optim.SGD", (
        (dict(momentum=0.9, nesterov=True), "torch"), (dict(momentum=0.9, dampening=0.3), "torch"),
        (dict(momentum=0.9, project=True), "kernel"), (dict(momentum=0.0, project=True), "kernel"),
        (dict(momentum=0.9, maximize=True), "torch"))),
    "sgdp": Row("kernel", "adamp.SGDP 0.3.0", (
        (dict(momentum=0.9, nesterov=True), "kernel"), (dict(momentum=0.9, dampening=0.2), "kernel"),
        (dict(momentum=0.9, project_momentum=False), "kernel"), (dict(momentum=0.9, maximize=True), "kernel"))),
    "adam": Row("torch", "torch.optim.Adam", (
        (dict(project=True), "kernel"), (dict(amsgrad=True), "torch"), (dict(maximize=True), "torch"),
        (dict(amsgrad=True, project=True), None))),
    "adamw": Row("torch", "torch.optim.AdamW", (
        (dict(nesterov=True), "kernel"), (dict(amsgrad=True, maximize=True), "torch"),
        (dict(project=True), "kernel"))),
    "adamp": Row("kernel", "adamp.AdamP 0.3.0", (
        (dict(nesterov=True), "kernel"), (dict(maximize=True), "kernel"))),
    "adai": Row("kernel", "official Adai (reference step in tests/parity)", (
        (dict(maximize=True), "kernel"), (dict(project=True), None))),
    "adaip": Row(None),
    "adaiw": Row("kernel", "official AdaiW", ((dict(project=True), None),)),
    "adaiwp": Row(None, "", ((dict(delta=0.5, wd_ratio=0.5), None),)),
    "rfadamw": Row("kernel", "hand-computed steps", ((dict(bias_correction=True), "kernel"),
                                                     (dict(project=True), None))),
    "rfadamwp": Row(None),
    "rfrmsprop": Row("kernel", "hand-computed steps", ((dict(maximize=True), "kernel"),
                                                       (dict(project=True), None))),
    "rfrmspropp": Row(None),
    "lion": Row(None, "pytorch_optimizer.Lion", ((dict(project=True), None),)),
    "lamb": Row(None, "paper step; pytorch_optimizer.Lamb at eps=0, λ=0, adam_debias", ((dict(project=True), None),)),
    "lars": Row(None, "paper step; pytorch_optimizer.LARS at a constant lr", ((dict(project=True), None),)),
    "rvadamw": Row(None, "official RotationalAdamW (reference step)", ((dict(project=True), None),)),
    "rvsgd": Row(None, "official RotationalSGD (reference step)", ((dict(momentum=0.9, nesterov=True), None),)),
    "rvlion": Row(None, "official RotationalLion (reference step)", ((dict(project=True), None),)),
    "adamc": Row(None, "paper step; torch.optim.AdamW at a constant lr", ((dict(project=True), None),)),
    "sgdc": Row(None, "paper step; torch.optim.SGD at a constant lr", ((dict(project=True), None),)),
}


def fast_form(rule: str, extra: dict | None = None) -> Optional[str]:
    """The form ``impl='auto'`` runs for ``rule`` with the structural options ``extra``."""
    row = TABLE[rule]
    for case, form in row.cases:
        if case == (extra or {}):
            return form
    return row.fast


def cases() -> list[tuple[str, dict]]:
    """Every rule at its defaults, then every structural case."""
    return [(r, {}) for r in TABLE] + [(r, dict(c)) for r, row in TABLE.items() for c, _ in row.cases]


def expected_impl(rule: str, extra: dict | None = None, dtype=torch.float64) -> str:
    """``last_impl`` of an ``impl='auto'`` step on CPU contiguous tensors of ``dtype``."""
    form = fast_form(rule, extra)
    if form == "kernel" and dtype not in (torch.float32, torch.float64):
        form = None
    return "reference" if form is None else "fast"


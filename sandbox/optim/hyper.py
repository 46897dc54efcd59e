"""Hyperparameter declarations: default, allowed range, provenance, and validation.

Every rule declares its hyperparameters as :class:`Hyper` records. Validation happens before any
state or parameter is touched, and every error names the hyperparameter, the value it got and the
allowed range, so that a person can fix the call without reading the source.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping


class _Required:
    """Sentinel for a hyperparameter the paper gives no default for (e.g. SGD's lr)."""

    def __repr__(self) -> str:
        return "<required>"


REQUIRED: Any = _Required()


def _real_in(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False):
    """A check for a real number in an interval; returns (check, human-readable range)."""
    hi_open = hi_open or math.isinf(hi)  # a hyperparameter is a finite number: inf is refused
    left, right = ("(" if lo_open else "["), (")" if hi_open else "]")
    text = f"{left}{lo:g}, {'inf' if math.isinf(hi) else format(hi, 'g')}{right}"

    def check(x: Any) -> bool:
        if isinstance(x, (bool, str, bytes)) or str(getattr(x, "dtype", "")) in ("bool", "torch.bool"):
            return False  # True would pass as 1, "0.1" as 0.1: refuse, don't guess
        if not isinstance(x, (int, float)):
            try:  # accept 0-d tensors and numpy scalars
                x = float(x)
            except (TypeError, ValueError, RuntimeError):
                return False
        if math.isnan(x) or math.isinf(x):
            return False
        above = x > lo if lo_open else x >= lo
        below = x < hi if hi_open else x <= hi
        return above and below

    return check, text


def nonnegative():
    """(check, text) for a finite real number >= 0."""
    return _real_in(0.0, math.inf)


ADAMP_DEFAULT = "Heo et al., ICLR 2021; official adamp 0.3.0 default"


def _betas_in(lo: float, hi: float):
    one, text = _real_in(lo, hi, hi_open=True)

    def check(x: Any) -> bool:
        return isinstance(x, (tuple, list)) and len(x) == 2 and all(one(b) for b in x)

    return check, f"a pair with each entry in {text}"


def _is_bool(x: Any) -> bool:
    return isinstance(x, bool)


def _positive_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter: its name, default, allowed range and where the default comes from."""

    name: str
    default: Any
    check: Callable[[Any], bool]
    allowed: str
    doc: str
    source: str = ""
    structural: bool = False  # changes the composition of the rule (rebuilds its chain)

    def validate(self, value: Any, rule: str) -> None:
        if value is REQUIRED:
            raise ValueError(
                f"{rule}: hyperparameter '{self.name}' is required (no published default); "
                f"pass {self.name}=<value in {self.allowed}>"
            )
        if not self.check(value):
            raise ValueError(
                f"{rule}: invalid {self.name}={value!r}: {self.name} must be {self.allowed} "
                f"({self.doc})"
            )


# Reusable declarations, parametrised by default and provenance.
def lr(default: Any, source: str) -> Hyper:
    c, t = _real_in(0.0, math.inf)
    return Hyper("lr", default, c, t, "learning rate", source)


def betas(default: tuple, source: str, doc: str = "(beta1, beta2) EMA coefficients") -> Hyper:
    c, t = _betas_in(0.0, 1.0)
    return Hyper("betas", default, c, t, doc, source)


def eps(default: float, source: str, doc: str = "numerical term added to the denominator") -> Hyper:
    c, t = _real_in(0.0, math.inf)
    return Hyper("eps", default, c, t, doc, source)


def weight_decay(default: float, source: str, doc: str) -> Hyper:
    c, t = _real_in(0.0, math.inf)
    return Hyper("weight_decay", default, c, t, doc, source)


def momentum(default: float, source: str) -> Hyper:
    c, t = _real_in(0.0, 1.0, hi_open=True)
    return Hyper("momentum", default, c, t, "heavy-ball momentum coefficient", source)


def dampening(default: float, source: str) -> Hyper:
    c, t = _real_in(0.0, 1.0)
    return Hyper("dampening", default, c, t, "dampening of the gradient in the momentum buffer", source)


def flag(name: str, default: bool, doc: str, source: str, structural: bool = False) -> Hyper:
    return Hyper(name, default, _is_bool, "True or False", doc, source, structural=structural)


def batch_size(source: str) -> Hyper:
    return Hyper(
        "batch_size", REQUIRED, _positive_int, "an integer >= 1",
        "batch size B of the mean loss: the preconditioner is B*v", source,
    )


def lr_cov(default: float, source: str) -> Hyper:
    c, t = _real_in(0.0, 1.0, lo_open=True)
    return Hyper("lr_cov", default, c, t, "EMA rate of the preconditioner, alpha = 1 - lr_cov", source)


_DELTA = _real_in(0.0, math.inf, lo_open=True)
_RATIO = _real_in(0.0, 1.0)
PROJECTION_HYPERS = (
    flag("project", False, "apply AdamP's radial projection to the update", "Heo et al., ICLR 2021",
         structural=True),
    Hyper("delta", 0.1, _DELTA[0], _DELTA[1],
          "threshold of the scale-invariance test max|cos(w, g)| < delta/sqrt(row length)",
          "Heo et al., ICLR 2021; official adamp 0.3.0 default"),
    Hyper("wd_ratio", 0.1, _RATIO[0], _RATIO[1],
          "factor on the decoupled weight decay where the projection fires",
          "Heo et al., ICLR 2021; official adamp 0.3.0 default"),
    Hyper("proj_eps", 1e-8, _real_in(0.0, math.inf)[0], _real_in(0.0, math.inf)[1],
          "eps of the projection's norms and cosines (rules whose eps means something else)",
          "official adamp 0.3.0 default eps"),
    flag("project_momentum", False,
         "write the projected direction back into the momentum buffer when the direction IS "
         "that buffer (official SGDP without Nesterov does this)", "adamp 0.3.0 SGDP"),
)

def _none_or_bool(x: Any) -> bool:
    return x is None or isinstance(x, bool)


def _false(x: Any) -> bool:
    return x is False


# Options every rule takes, as torch.optim's optimizers do (they live in the param groups).
ADAPTER_HYPERS = (
    flag("maximize", False, "maximize the objective: the rule follows -g", "torch.optim"),
    Hyper("foreach", None, _none_or_bool, "None, True or False",
          "torch.optim's implementation hint; a rule with a fused form runs it, otherwise the stages",
          "torch.optim"),
    Hyper("fused", None, _none_or_bool, "None, True or False",
          "torch.optim's implementation hint; a rule with a fused form runs it, otherwise the stages",
          "torch.optim"),
    Hyper("capturable", False, _false, "False",
          "CUDA-graph capture is not supported: the step counters live on the host", "torch.optim"),
    Hyper("differentiable", False, _false, "False",
          "a differentiable step (autograd through the update) is not supported", "torch.optim"),
)

# Keys a param group may carry besides the hyperparameters.
GROUP_KEYS = ("params", "replica_dims", "name", "initial_lr")


def close_matches(word: str, choices) -> str:
    found = difflib.get_close_matches(word, list(choices), n=4, cutoff=0.5)
    return f"did you mean {', '.join(repr(f) for f in found)}? " if found else ""


def validate(rule: str, hypers: Mapping[str, Hyper], values: Mapping[str, Any]) -> None:
    """Raise ValueError for unknown keys or values out of range; never returns partial results."""
    for key in values:
        if key not in hypers and key not in GROUP_KEYS:
            raise ValueError(
                f"{rule}: unknown hyperparameter '{key}'; {close_matches(key, hypers)}"
                f"allowed: {', '.join(sorted(hypers))}"
            )
    for name, h in hypers.items():
        if name in values:
            h.validate(values[name], rule)
    rd = values.get("replica_dims", 0)
    if not (isinstance(rd, int) and not isinstance(rd, bool) and rd >= 0):
        raise ValueError(f"{rule}: invalid replica_dims={rd!r}: must be an integer >= 0")

r"""The update direction of a chunk, kept lazy so that no stage writes a pass it does not need.

For every tensor ``i`` of a chunk the fast stages carry the direction as

.. math::  u_i = \sum_k c_{k,i}\, \frac{N_{k,i}}{D_{k,i}} \;+\; \alpha_i \odot \theta_i

(``D`` = 1 for a plain term; ``α`` a scalar or a per-row coefficient, broadcast over each row of
the chunk, see :mod:`sandbox.optim.fast.plan`). A decoupled weight decay is then a change of ``α``, the
learning rate a change of ``c`` and ``α``, and ``θ ← θ + u`` is ``θ ← (1+α)θ + Σ c·N/D``: one
multiply and one ``add``/``addcdiv`` pass, with no temporary. Stages that need ``u`` as a tensor
(moments, the projection's inner products) call :meth:`Direction.materialize`, which writes it
into the chunk's scratch views. The reference path computes the same numbers in a different
order: equal up to float round-off (tests/test_fast_paths.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import torch
from torch import Tensor

from .plan import Chunk

Alpha = Union[None, float, Tensor]


@dataclass
class Term:
    coef: list[float]
    num: list[Tensor]
    den: Optional[list[Tensor]] = None

    def uses(self, xs: list[Tensor]) -> bool:
        return any(a is b for a, b in zip(self.num, xs)) or (
            self.den is not None and any(a is b for a, b in zip(self.den, xs)))


@dataclass
class Direction:
    terms: list[Term]
    alpha: Alpha = None
    state_key: Optional[str] = None  # the direction IS state[state_key] of every tensor
    extra: dict = field(default_factory=dict)

    @classmethod
    def plain(cls, tensors: list[Tensor], state_key: Optional[str] = None) -> "Direction":
        return cls([Term([1.0] * len(tensors), list(tensors))], None, state_key)

    def is_plain(self) -> bool:
        t = self.terms[0]
        return (len(self.terms) == 1 and t.den is None and self.alpha is None
                and all(c == 1.0 for c in t.coef))

    def tensors(self) -> list[Tensor]:
        if not self.is_plain():
            raise RuntimeError("internal: direction is not a plain tensor list")
        return self.terms[0].num

    def scale(self, s: float) -> "Direction":
        """u ← s·u (no pass: coefficients only)."""
        for t in self.terms:
            t.coef = [c * s for c in t.coef]
        if self.alpha is not None:
            self.alpha = self.alpha * s
        self.state_key = None
        return self

    def add_alpha(self, a: Alpha) -> None:
        """u ← u + a·θ (no pass)."""
        if a is None:
            return
        self.alpha = a if self.alpha is None else self.alpha + a
        self.state_key = None

    # --- passes -----------------------------------------------------------------------------
    def materialize(self, chunk: Chunk) -> list[Tensor]:
        """u as tensors: the term lists themselves if plain, else written into the scratch."""
        if self.is_plain():
            return self.terms[0].num
        out = chunk.scratch
        terms = sorted(self.terms, key=lambda t: not t.uses(out))  # the one reading scratch first
        if any(t.uses(out) for t in terms[1:]):  # e.g. Nesterov Adam: two terms over one denominator
            out = [torch.empty_like(x) for x in out]  # a rare composition: one fresh temporary
        first, rest = terms[0], terms[1:]
        alpha = self.alpha
        if (not rest and first.den is None and isinstance(alpha, (int, float))
                and all(c == 1.0 for c in first.coef)):
            assign_plus_alpha(out, first.num, alpha, chunk)  # e.g. g + λθ (coupled L2): one pass
            alpha = None
        else:
            assign(out, first.num, first.den, chunk)
            if any(c != 1.0 for c in first.coef):
                torch._foreach_mul_(out, operand(out, first.coef))
        for t in rest:
            add_scaled_(out, t.num, t.den, t.coef)
        if alpha is not None:
            add_alpha_(out, chunk.params, alpha, chunk)
        self.terms, self.alpha, self.state_key = [Term([1.0] * len(out), out)], None, None
        return out

    def apply(self, chunk: Chunk) -> None:
        """θ ← θ + u, i.e. θ ← (1 + α)θ + Σ c·N/D."""
        ps = chunk.params
        if self.alpha is not None:
            if isinstance(self.alpha, Tensor):
                vec, views = chunk.row_buffer("one_plus_alpha")
                torch.add(self.alpha, 1.0, out=vec)
                torch._foreach_mul_(ps, views)
            else:
                torch._foreach_mul_(ps, operand(ps, 1.0 + self.alpha))
        for t in self.terms:
            add_scaled_(ps, t.num, t.den, t.coef)


# --- list operations (plumbing): foreach in place, or per tensor with out= ---------------------
def operand(xs: list[Tensor], value: float | list[float]):
    """``value`` (a number, or one per tensor) as the scalar operand of a list kernel over ``xs``.

    On a CPU, torch 2.13's list kernels box a Python scalar into a tensor for every tensor of the
    list (measured: 1.8 µs per tensor for ``_foreach_mul_(xs, 0.9)``, 0.5 µs with a 0-d tensor),
    so a float32/float64 list gets one 0-d float64 tensor, which gives bitwise the same results (the
    kernels convert it to the list's dtype as they do the number; checked for mul, add and div).
    16-bit lists (whose kernels would round a tensor operand differently), other devices and
    unequal per-tensor values get the number(s) unchanged."""
    if isinstance(value, list):
        if any(v != value[0] for v in value):
            return value
        value = value[0]
    x = xs[0]
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        return torch.tensor(float(value), dtype=torch.float64)
    return value

def assign(out: list[Tensor], num: list[Tensor], den: Optional[list[Tensor]], chunk: Chunk) -> None:
    """out ← num (/ den), without allocating."""
    if den is None:
        if any(a is not b for a, b in zip(out, num)):
            torch._foreach_copy_(out, num)
        return
    big, small = chunk.parts(out, num, den)
    for o, n, d in big:
        torch.div(n, d, out=o)
    if small is not None:
        o, n, d = small
        if any(a is b for a, b in zip(o, n)):  # out = out / den
            torch._foreach_div_(o, d)
        elif any(a is b for a, b in zip(o, d)):  # out = num / out
            torch._foreach_reciprocal_(o)
            torch._foreach_mul_(o, n)
        else:
            torch._foreach_copy_(o, n)
            torch._foreach_div_(o, d)


def assign_plus_alpha(out: list[Tensor], num: list[Tensor], alpha: float, chunk: Chunk) -> None:
    """out ← num + α·θ (scalar α): one ``out=`` pass per big tensor, list kernels for the small."""
    ps = chunk.params
    for i in chunk.big:
        torch.add(num[i], ps[i], alpha=alpha, out=out[i])
    if chunk.small:
        o, n, p = ([x[i] for i in chunk.small] for x in (out, num, ps))
        if any(a is not b for a, b in zip(o, n)):
            torch._foreach_copy_(o, n)
        torch._foreach_add_(o, p, alpha=alpha)


def add_scaled_(ys: list[Tensor], num: list[Tensor], den: Optional[list[Tensor]],
                coef: list[float]) -> None:
    """ys ← ys + c·num (/ den), one pass, coefficients per tensor."""
    if den is not None:
        torch._foreach_addcdiv_(ys, num, den, coef)
        return
    for c, idx in _by_value(coef).items():
        if len(idx) == len(ys):
            torch._foreach_add_(ys, num, alpha=c)
        else:
            torch._foreach_add_([ys[i] for i in idx], [num[i] for i in idx], alpha=c)


def add_alpha_(ys: list[Tensor], ps: list[Tensor], alpha: Alpha, chunk: Chunk) -> None:
    """ys ← ys + α·θ."""
    if isinstance(alpha, Tensor):
        torch._foreach_addcmul_(ys, ps, _views(alpha, chunk))
    else:
        torch._foreach_add_(ys, ps, alpha=float(alpha))


def _views(vec: Tensor, chunk: Chunk) -> list[Tensor]:
    return chunk.row_views(vec)


def _by_value(coef: list[float]) -> dict[float, list[int]]:
    out: dict[float, list[int]] = {}
    for i, c in enumerate(coef):
        out.setdefault(c, []).append(i)
    return out

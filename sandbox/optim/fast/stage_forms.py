r"""List ("chunk") forms of the stages in :mod:`sandbox.optim.stages`: the same math, fewer passes.

Each function ``form(stage, d, fc)`` maps the lazy :class:`~sandbox.optim.fast.direction.Direction` of a
chunk exactly as ``stage.update`` maps ``u`` for each tensor, with the stage's own
hyperparameters and state keys (so state dicts are interchangeable between the two paths). What
changes is only the evaluation: in-place list kernels on persistent state, one scratch view per
tensor, coefficients folded into the final ``θ ← (1+α)θ + Σ c·N/D``. Each form names the stage it
mirrors; the formulas and references are in that stage's docstring. Equality with the reference
(float64, parameters and state) is checked in tests/test_fast_paths.py.

No host synchronisation: every data-dependent choice (which projection view fires, Adai's v̄ = 0
guard) is a ``torch.where`` on device tensors. Step counters stay CPU tensors (as the reference).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from ..replicas import broadcast_to_items, per_replica_numel, per_replica_sum
from ..stages import (
    adaptive_inertia, add_decayed_weights, heavy_ball, precondition_rootfree, radial_projection,
    scale_by_adam, scale_by_lr, scale_by_rootfree_adam,
)
from ..stages.projection import CHANNEL, LAYER
from .direction import Direction, Term, add_alpha_, add_scaled_, assign, operand
from .plan import Chunk


@dataclass
class FastContext:
    """What a stage form may read about one chunk at one step (cf. :class:`sandbox.optim.stages.Context`)."""

    chunk: Chunk
    grads: list[Tensor]
    states: list[dict]
    hp: Mapping[str, Any]
    rd: int
    infos: list[dict]
    lazy_info: Callable  # (info dict, key, thunk) -> None: a diagnostic computed on access
    globals: dict = field(default_factory=dict)
    decay_scale: Any = None  # None (1) or a row vector: the projection's wd_ratio where it fired
    t: list[float] = field(default_factory=list)  # step counts after this step's increment

    @property
    def params(self) -> list[Tensor]:
        return self.chunk.params

    def state_tensors(self, key: str, fill: float = 0.0) -> list[Tensor]:
        out = []
        for p, s in zip(self.params, self.states):
            if key not in s:
                s[key] = torch.full_like(p, fill, memory_format=torch.preserve_format)
            out.append(s[key])
        return out

    def step_counts(self, key: str = "step") -> list[float]:
        """Increment every tensor's CPU step counter (as ``Context.step_count``), return the new t."""
        steps = []
        for s in self.states:
            if key not in s:
                s[key] = torch.tensor(0.0, dtype=torch.float32)
            steps.append(s[key])
        torch._foreach_add_(steps, 1.0)
        self.t = [float(s) for s in steps]  # CPU tensors: no device synchronisation
        return self.t

    def free(self, d: Direction, also: tuple = ()) -> list[Tensor]:
        """The scratch views if nothing live reads them, else fresh tensors (rare compositions)."""
        scr = self.chunk.scratch
        busy = any(t.uses(scr) for t in d.terms) or any(
            any(a is b for a, b in zip(x, scr)) for x in also)
        if busy:
            return [torch.empty_like(p, memory_format=torch.contiguous_format) for p in self.params]
        return scr


def _tensor_u(d: Direction, fc: FastContext, keep: bool = False) -> list[Tensor]:
    """u as tensors. ``keep``: leave ``d`` lazy (the value is written to the scratch only)."""
    if d.is_plain():
        return d.tensors()
    if keep:
        tmp = Direction([Term(list(t.coef), t.num, t.den) for t in d.terms], d.alpha)
        return tmp.materialize(fc.chunk)
    return d.materialize(fc.chunk)


# --- base.py ------------------------------------------------------------------------------------
def decayed_weights(stage: add_decayed_weights, d: Direction, fc: FastContext) -> Direction:
    """``add_decayed_weights``: u + λ·s·θ is a change of α (no pass)."""
    wd = fc.hp["weight_decay"]
    if wd == 0:
        return d
    scale = 1.0 if fc.decay_scale is None else fc.decay_scale
    if stage.sgdp_scaling:
        scale = scale / (1.0 - fc.hp["momentum"])
    d.add_alpha(wd * scale)
    return d


def lr_scale(stage: scale_by_lr, d: Direction, fc: FastContext) -> Direction:
    """``scale_by_lr``: u·(−lr) is a change of the coefficients (no pass)."""
    return d.scale(-fc.hp["lr"])


# --- moments.py ---------------------------------------------------------------------------------
def momentum(stage: heavy_ball, d: Direction, fc: FastContext) -> Direction:
    """``heavy_ball``: b ← μ b + (1−τ) u (in place, u never materialised), Nesterov lazily."""
    mu, tau = fc.hp["momentum"], fc.hp.get("dampening", 0.0)
    if stage.first == "input" and mu == 0:
        return d
    key, ps = stage.key, fc.params
    fresh = [i for i, s in enumerate(fc.states) if stage.key not in s]
    if stage.first == "input" and fresh:  # b_1 = u_1 for new buffers: per tensor (first step only)
        u = _tensor_u(d, fc, keep=True)
        for i, s in enumerate(fc.states):
            if key not in s:
                s[key] = u[i].detach().clone(memory_format=torch.preserve_format)
            else:
                s[key].mul_(mu).add_(u[i], alpha=1.0 - tau)
        bufs = [s[key] for s in fc.states]
    else:
        bufs = fc.state_tensors(key)
        t0 = d.terms[0]
        if tau == 0 and t0.den is None and all(c == 1.0 for c in t0.coef):
            big, small = fc.chunk.parts(bufs, t0.num)
            for b, x in big:  # b ← u + μ·b in one pass
                torch.add(x, b, alpha=mu, out=b)
            if small is not None:
                torch._foreach_mul_(small[0], operand(small[0], mu))
                torch._foreach_add_(small[0], small[1])
            rest = d.terms[1:]
        else:
            torch._foreach_mul_(bufs, operand(bufs, mu))
            rest = d.terms
        for t in rest:
            add_scaled_(bufs, t.num, t.den, [c * (1.0 - tau) for c in t.coef])
        if d.alpha is not None:
            add_alpha_(bufs, ps, d.alpha * (1.0 - tau), fc.chunk)
    if fc.hp.get("nesterov", False):
        d.terms.append(Term([mu] * len(bufs), bufs))
        d.state_key = None
        return d
    return Direction.plain(bufs, state_key=key)


def adam(stage: scale_by_adam, d: Direction, fc: FastContext) -> Direction:
    """``scale_by_adam``. Plain gradient input on the CPU: torch's fused Adam kernel writes the
    bias-corrected ratio into the zeroed scratch (lr = −1, weight decay 0), moments in the same
    pass. Otherwise in-place list kernels in the reference's order of operations."""
    beta1, beta2 = fc.hp["betas"]
    eps, nesterov = fc.hp["eps"], fc.hp.get("nesterov", False)
    t = fc.step_counts()
    m, v = fc.state_tensors("exp_avg"), fc.state_tensors("exp_avg_sq")
    ps = fc.params
    if d.is_plain() and not nesterov and ps[0].device.type == "cpu" and not d.terms[0].uses(
            fc.chunk.scratch):
        scr = fc.chunk.scratch
        torch._foreach_zero_(scr)
        steps = [s["step"] for s in fc.states]
        torch._fused_adam_(scr, d.tensors(), m, v, [], steps, lr=-1.0, beta1=beta1, beta2=beta2,
                           weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)
        return Direction.plain(scr)
    u = _tensor_u(d, fc)
    torch._foreach_mul_(m, operand(m, beta1))
    torch._foreach_add_(m, u, alpha=1.0 - beta1)
    torch._foreach_mul_(v, operand(v, beta2))
    torch._foreach_addcmul_(v, u, u, value=1.0 - beta2)
    den = fc.free(Direction.plain(u)) if nesterov else fc.free(Direction([]))
    _assign_sqrt(den, v, fc.chunk)
    torch._foreach_div_(den, operand(den, [math.sqrt(1.0 - beta2**ti) for ti in t]))
    torch._foreach_add_(den, operand(den, eps))
    bc1 = [1.0 - beta1**ti for ti in t]
    if nesterov:
        return Direction([Term([beta1 / b for b in bc1], m, den),
                          Term([(1.0 - beta1) / b for b in bc1], u, den)])
    return Direction([Term([1.0 / b for b in bc1], m, den)])


def _assign_sqrt(out: list[Tensor], v: list[Tensor], chunk: Chunk) -> None:
    big, small = chunk.parts(out, v)
    for o, x in big:
        torch.sqrt(x, out=o)
    if small is not None:
        torch._foreach_copy_(small[0], small[1])
        torch._foreach_sqrt_(small[0])


# --- rootfree.py --------------------------------------------------------------------------------
def _assign_affine(out: list[Tensor], v: list[Tensor], scale: list[float], shift: float,
                   chunk: Chunk) -> None:
    """out ← scale·v + shift (one pass per big tensor)."""
    big, small = chunk.parts(out, v, scale)
    if big:
        b = torch.full((), shift, dtype=v[0].dtype, device=v[0].device)
        for o, x, a in big:
            torch.add(b, x, alpha=a, out=o)
    if small is not None:
        o, x, a = small
        torch._foreach_copy_(o, x)
        torch._foreach_mul_(o, operand(o, list(a)))
        torch._foreach_add_(o, operand(o, shift))


def rootfree_adam(stage: scale_by_rootfree_adam, d: Direction, fc: FastContext) -> Direction:
    """``scale_by_rootfree_adam``: (m/c1)/(B·v/c2 + λ) as one lazy ratio term."""
    beta1, beta2 = fc.hp["betas"]
    B = fc.hp["batch_size"]
    t = fc.step_counts()
    m, v = fc.state_tensors("exp_avg"), fc.state_tensors("exp_avg_sq", fill=1.0 / B)
    u = _tensor_u(d, fc)
    torch._foreach_lerp_(m, u, 1.0 - beta1)  # m + (1−β1)(u − m), one pass
    torch._foreach_mul_(v, operand(v, beta2))
    torch._foreach_addcmul_(v, u, u, value=1.0 - beta2)
    if fc.hp["bias_correction"]:
        c1, c2 = [1.0 - beta1**ti for ti in t], [1.0 - beta2**ti for ti in t]
    else:
        c1 = c2 = [1.0] * len(t)
    den = fc.free(Direction([]))
    _assign_affine(den, v, [B / c for c in c2], fc.hp["eps"], fc.chunk)
    return Direction([Term([1.0 / c for c in c1], m, den)])


def rootfree_precondition(stage: precondition_rootfree, d: Direction, fc: FastContext) -> Direction:
    """``precondition_rootfree``: u/(B·v + λ) as one lazy ratio term."""
    B, rate = fc.hp["batch_size"], fc.hp["lr_cov"]
    v = fc.state_tensors("exp_avg_sq", fill=1.0 / B)
    u = _tensor_u(d, fc)
    torch._foreach_mul_(v, operand(v, 1.0 - rate))
    torch._foreach_addcmul_(v, u, u, value=rate)
    den = fc.free(Direction.plain(u))
    _assign_affine(den, v, [float(B)] * len(v), fc.hp["eps"], fc.chunk)
    return Direction([Term([1.0] * len(u), u, den)])


# --- adai.py ------------------------------------------------------------------------------------
def inertia_reduce(stage: adaptive_inertia, d: Direction, fc: FastContext):
    """``adaptive_inertia.reduce``: v update and per-replica partial sums of v/bc2. ``d`` stays
    lazy (sweep 2 reads it again), so nothing is held in the scratch between the sweeps."""
    beta2 = fc.hp["betas"][1]
    t = fc.step_counts()
    v = fc.state_tensors("exp_avg_sq")
    u = _tensor_u(d, fc, keep=True)
    torch._foreach_mul_(v, operand(v, beta2))
    torch._foreach_addcmul_(v, u, u, value=1.0 - beta2)
    out = []
    for x, ti, info in zip(v, t, fc.infos):
        info["bc2"] = 1.0 - beta2**ti
        acc = torch.promote_types(x.dtype, torch.float32)
        out.append((per_replica_sum(x, fc.rd, dtype=acc) / info["bc2"], per_replica_numel(x, fc.rd)))
    return out


def inertia_update(stage: adaptive_inertia, d: Direction, fc: FastContext) -> Direction:
    """``adaptive_inertia.update`` with w = 1 − β1 = clamp(v/(bc2·v̄/β0), ε, 1) in the scratch:
    P ← P·(1 − w), m ← m + w·(u − m) (a lerp), direction m/(1 − P) as one lazy ratio term.
    v̄ = 0 gives v̂/v̄ := 1 (the reference's guard) through ``guard``; no host sync."""
    beta0, eps = fc.hp["betas"][0], fc.hp["eps"]
    v = fc.state_tensors("exp_avg_sq")
    vbar = fc.globals[stage.name]
    pos = vbar > 0
    # Divide by v̄/β0 rather than multiply by β0/v̄: the inverse overflows for tiny gradients
    # (|g| ≲ 1e-20 in float32) where the reference's ratio v̂/v̄ is finite.
    scale = torch.where(pos, vbar / beta0, 1.0)  # v̄/β0 (1 where v̄ = 0: there v = 0)
    guard = torch.where(pos, 0.0, beta0)  # v̂/v̄ := 1 where v̄ = 0
    factors, guards, cache = [], [], {}
    for x, info in zip(v, fc.infos):
        key = (info["bc2"], x.dim())
        if key not in cache:  # bc2·v̄/β0 per replica (a divisor), shaped to broadcast against x
            cache[key] = (broadcast_to_items(scale * info["bc2"], x, fc.rd).to(x.dtype),
                          broadcast_to_items(guard, x, fc.rd).to(x.dtype))
        factors.append(cache[key][0])
        guards.append(cache[key][1])
    if d.terms and (len(d.terms) > 1 or d.terms[0].den is not None or isinstance(d.alpha, Tensor)
                    or any(c != 1.0 for c in d.terms[0].coef)):
        u, alpha = _tensor_u(d, fc), None  # rare composition: u materialised in the scratch
        w = fc.free(Direction.plain(u))
    else:
        u, alpha = d.terms[0].num, d.alpha
        w = fc.chunk.scratch
    _assign_inertia(w, v, factors, guards, eps, fc.chunk)
    prod, m = fc.state_tensors("beta1_prod", fill=1.0), fc.state_tensors("exp_avg")
    torch._foreach_addcmul_(prod, prod, w, value=-1.0)
    torch._foreach_lerp_(m, u, w)
    if alpha is not None:  # u = g + α·θ (coupled decay): m += w·α·θ
        torch._foreach_addcmul_(m, fc.params, w, value=float(alpha))
    for i, info in enumerate(fc.infos):
        fc.lazy_info(info, "beta1", _inertia_thunk(v[i], factors[i], guards[i], eps))
    den = w if w is fc.chunk.scratch else fc.free(Direction.plain(u), also=(w,))
    big, small = fc.chunk.parts(den, prod)
    one = torch.ones((), dtype=prod[0].dtype, device=prod[0].device)
    for o, x in big:  # 1 − P
        torch.sub(one, x, out=o)
    if small is not None:
        torch._foreach_copy_(small[0], small[1])
        torch._foreach_mul_(small[0], operand(small[0], -1.0))
        torch._foreach_add_(small[0], operand(small[0], 1.0))
    return Direction([Term([1.0] * len(m), m, den)])


def _assign_inertia(w, v, divisors, guards, eps, chunk) -> None:
    """w ← clamp(v/divisor + guard, ε, 1)."""
    big, small = chunk.parts(w, v, divisors, guards)
    for o, x, f, g in big:
        torch.div(x, f, out=o).add_(g).clamp_(eps, 1.0)
    if small is not None:
        o, x, f, g = small
        torch._foreach_copy_(o, x)
        torch._foreach_div_(o, list(f))
        torch._foreach_add_(o, list(g))
        torch._foreach_clamp_min_(o, eps)
        torch._foreach_clamp_max_(o, 1.0)


def _inertia_thunk(v: Tensor, divisor: Tensor, guard: Tensor, eps: float):
    return lambda: 1.0 - (v / divisor + guard).clamp_(eps, 1.0)

"""Helpers of the kernel parity tests: parameter sets, gradients that make each projection view
fire (or not), and the side-by-side run of a kernel against the stage path (``impl="reference"``).

The kernel is called the way the optimizer adapter will call it: one call per parameter group,
with the group's ``replica_dims``; the reference is ``sandbox.create(rule, groups,
impl="reference", **hp)`` fed the same gradients (negated where the kernel gets ``maximize``).
Compared after every step: parameters, their displacement since the start (the step's math
without θ's own magnitude diluting it), every state tensor (same keys, dtype, shape), and the
projection codes.

Tolerances (relative to a tensor's largest entry): float64 1e-12. float32 2e-5, or, where float32
itself is ill-conditioned (a state entry that is a small difference of large terms, e.g. Adai's m
after a sign change of g), at most 4× the stage path's own float32 error against a float64 run
fed the same float32 inputs, plus 4 ulp: the kernel is held to be as accurate as the stages.
"""
from __future__ import annotations

import math

import torch

import sandbox

RTOL = {torch.float64: 1e-12, torch.float32: 2e-5}

# (shape, replica_dims) sets: conv, linear, bias, scalar, one-row weight, empty tensors
NET = [(6, 3, 3, 3), (5, 7), (5,), (), (1, 8), (0, 4), (3, 0, 2)]
REPLICAS = {
    1: [(3, 4, 5), (3, 2, 3, 2), (3, 6), (3,), (3, 1, 4), (3, 0, 2)],
    2: [(2, 3, 4, 2, 2), (2, 3, 5), (2, 3), (2, 3, 1, 3)],
}
# tensors longer than a task (layout_cpu.BLOCK = 16384): several tasks per tensor and per
# replica, replicas straddling tasks, rows longer than a block
BIG = {0: [(40000,), (2, 20000), (3, 6000)], 1: [(2, 20000), (2, 3, 7000), (2, 9000)]}
MODES = ("channel", "layer", "none")


def shapes(rd: int):
    return NET if rd == 0 else REPLICAS[rd]


def params(shape_list, dtype, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in shape_list]


def gradient(w: torch.Tensor, rd: int, step: int, gen: torch.Generator, projectable: bool) -> torch.Tensor:
    """A gradient for the current weight w: per replica r of a projectable tensor, mode
    MODES[(step + r) % 3] — 'channel': orthogonal to w row by row (the channel view fires),
    'layer': a different multiple of w on each row, made orthogonal to w on the whole replica
    only (the channel view fails, the layer view fires), 'none': 0.5 of w's direction added
    (no view fires). Random elsewhere."""
    w64 = w.to(torch.float64)
    g = torch.randn(w.shape, generator=gen, dtype=torch.float64)
    if not projectable or w.numel() == 0:
        return g.to(w.dtype)
    r_count, c = math.prod(w.shape[:rd]), w.shape[rd]
    wr, gr = w64.reshape(r_count, c, -1), g.reshape(r_count, c, -1)
    for r in range(r_count):
        mode = MODES[(step + r) % 3]
        W, G = wr[r], gr[r]
        if mode == "channel":
            G -= W * (W * G).sum(1, keepdim=True) / (W * W).sum(1, keepdim=True)
        elif mode == "layer":
            scale = torch.linspace(-1.0, 1.0, c, dtype=torch.float64).view(c, 1) + 0.3
            G.copy_(scale * W + 0.1 * G)
            G -= W * (W * G).sum() / (W * W).sum()
        else:
            G += 0.5 * W * G.norm() / W.norm()
    return g.to(w.dtype)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.numel() == 0:
        return 0.0
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _check(k: torch.Tensor, r: torch.Tensor, r64, where) -> float:
    """Assert the kernel's tensor k equals the reference's r (see the module docstring); return
    the relative error."""
    e = rel_err(k, r)
    tol = RTOL[r.dtype]
    if e <= tol:
        return e
    assert r64 is not None, (where, e)
    ulp = float(torch.finfo(r.dtype).eps)
    e_k, e_r = rel_err(k, r64), rel_err(r, r64)
    assert e_k <= 4 * e_r + 4 * ulp, (where, e, e_k, e_r)
    return e


def run_pair(rule: str, hp: dict, rd: int, dtype, kernel_step, *, steps: int = 6,
             maximize: bool = False, seed: int = 0, shape_list=None) -> dict:
    """Run ``kernel_step(params, grads, states, maximize)`` (one group) against the reference for
    ``steps`` steps; assert equality after every step; return the worst errors and the set of
    projection codes seen (``kernel_step`` returning None: no codes to compare)."""
    shape_list = shapes(rd) if shape_list is None else shape_list
    ref = [p.clone().requires_grad_() for p in params(shape_list, dtype, seed)]
    ker = [p.detach().clone() for p in ref]
    start = [p.detach().clone() for p in ref]
    opt = sandbox.create(rule, [{"params": ref, "replica_dims": rd}], impl="reference", **hp)
    truth = None  # float32: the stage path in float64 on the same inputs
    if dtype != torch.float64:
        truth = [p.detach().double().requires_grad_() for p in ref]
        opt64 = sandbox.create(rule, [{"params": truth, "replica_dims": rd}], impl="reference", **hp)
    states = [{} for _ in ker]
    gen = torch.Generator().manual_seed(seed + 1)
    worst = {"param": 0.0, "move": 0.0, "state": 0.0}
    seen = set()
    for t in range(steps):
        grads = [gradient(p.detach(), rd, t, gen, len(p.shape) - rd >= 2) for p in ref]
        for p, g in zip(ref, grads):
            p.grad = -g if maximize else g.clone()
        opt.step()
        if truth is not None:
            for p, g in zip(truth, grads):
                p.grad = -g.double() if maximize else g.double()
            opt64.step()
        codes = kernel_step(ker, [g.clone() for g in grads], states, maximize)
        for i, (r, k) in enumerate(zip(ref, ker)):
            r = r.detach()
            t64 = None if truth is None else truth[i].detach()
            e_p = _check(k, r, t64, (rule, t, i, "param"))
            e_m = _check(k - start[i], r - start[i], None if t64 is None else t64 - start[i].double(),
                         (rule, t, i, "move"))
            worst["param"], worst["move"] = max(worst["param"], e_p), max(worst["move"], e_m)
            rs, ks = opt.state[ref[i]], states[i]
            assert set(rs) == set(ks), (rule, i, sorted(rs), sorted(ks))
            for key in rs:
                assert rs[key].dtype == ks[key].dtype and rs[key].shape == ks[key].shape, (rule, key)
                if key == "step":
                    assert torch.equal(ks[key], rs[key]), (rule, t, i, ks[key], rs[key])
                    continue
                s64 = None if truth is None else opt64.state[truth[i]][key]
                e = _check(ks[key], rs[key], s64, (rule, t, i, key))
                worst["state"] = max(worst["state"], e)
            if codes is not None:
                info = opt.last_info[ref[i]]
                want = info.get("projection", torch.zeros(r.shape[:rd], dtype=torch.uint8))
                assert codes[i].dtype == torch.uint8 and codes[i].shape == want.shape
                assert torch.equal(codes[i], want), (rule, t, i, codes[i], want)
                seen.update(codes[i].reshape(-1).tolist())
    worst["codes"] = seen
    return worst


def run_switch(rule: str, hp: dict, kernel_step, *, rd: int = 0, steps: int = 6) -> None:
    """State dicts are interchangeable: the kernel for the first half of the run, then the
    stage path on the kernel's state, equals the stage path throughout (float64, 1e-12)."""
    shape_list = shapes(rd)
    ref = [p.requires_grad_() for p in params(shape_list, torch.float64)]
    mixed = [p.detach().clone().requires_grad_() for p in ref]
    opt = sandbox.create(rule, [{"params": ref, "replica_dims": rd}], impl="reference", **hp)
    opt_mixed = sandbox.create(rule, [{"params": mixed, "replica_dims": rd}], impl="reference", **hp)
    states = [{} for _ in mixed]
    gen = torch.Generator().manual_seed(7)
    for t in range(steps):
        grads = [gradient(p.detach(), rd, t, gen, len(p.shape) - rd >= 2) for p in ref]
        for p, g in zip(ref, grads):
            p.grad = g.clone()
        opt.step()
        if t < steps // 2:
            with torch.no_grad():
                kernel_step(mixed, grads, states, False)
            if t == steps // 2 - 1:
                for p, st in zip(mixed, states):
                    opt_mixed.state[p] = st
        else:
            for p, g in zip(mixed, grads):
                p.grad = g.clone()
            opt_mixed.step()
    for r, m in zip(ref, mixed):
        assert rel_err(m.detach(), r.detach()) <= RTOL[torch.float64]
        for key, value in opt.state[r].items():
            assert rel_err(opt_mixed.state[m][key], value) <= RTOL[torch.float64], key

"""Helpers of the kernel parity tests: parameter sets, gradients that make each projection view
fire (or not), and the side-by-side run of a kernel against the stage path (``impl="reference"``).

The kernel is called the way the optimizer adapter will call it: one call per parameter group,
with the group's ``replica_dims``; the reference is ``sandbox.create(rule, groups,
impl="reference", **hp)`` fed the same gradients (negated where the kernel gets ``maximize``).
Compared after every step: parameters, their displacement since the start (the step's math
without θ's own magnitude diluting it), every state tensor (same keys, dtype, shape), and the
projection codes.
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


def run_pair(rule: str, hp: dict, rd: int, dtype, kernel_step, *, steps: int = 6,
             maximize: bool = False, seed: int = 0) -> dict:
    """Run ``kernel_step(params, grads, states, maximize)`` (one group) against the reference for
    ``steps`` steps; assert equality after every step; return the worst errors and the set of
    projection codes seen (``kernel_step`` returning None: no codes to compare)."""
    shape_list = shapes(rd)
    ref = [p.clone().requires_grad_() for p in params(shape_list, dtype, seed)]
    ker = [p.detach().clone() for p in ref]
    start = [p.detach().clone() for p in ref]
    opt = sandbox.create(rule, [{"params": ref, "replica_dims": rd}], impl="reference", **hp)
    states = [{} for _ in ker]
    gen = torch.Generator().manual_seed(seed + 1)
    tol = RTOL[dtype]
    worst = {"param": 0.0, "move": 0.0, "state": 0.0}
    seen = set()
    for t in range(steps):
        grads = [gradient(p.detach(), rd, t, gen, len(p.shape) - rd >= 2) for p in ref]
        for p, g in zip(ref, grads):
            p.grad = -g if maximize else g.clone()
        opt.step()
        codes = kernel_step(ker, [g.clone() for g in grads], states, maximize)
        for i, (r, k) in enumerate(zip(ref, ker)):
            r = r.detach()
            e_p, e_m = rel_err(k, r), rel_err(k - start[i], r - start[i])
            assert e_p <= tol and e_m <= tol, (rule, t, i, tuple(r.shape), e_p, e_m)
            worst["param"], worst["move"] = max(worst["param"], e_p), max(worst["move"], e_m)
            rs, ks = opt.state[ref[i]], states[i]
            assert set(rs) == set(ks), (rule, i, sorted(rs), sorted(ks))
            for key in rs:
                assert rs[key].dtype == ks[key].dtype and rs[key].shape == ks[key].shape, (rule, key)
                e = rel_err(ks[key], rs[key])
                assert e <= (0.0 if key == "step" else tol), (rule, t, i, key, e)
                worst["state"] = max(worst["state"], e)
            if codes is not None:
                info = opt.last_info[ref[i]]
                want = info.get("projection", torch.zeros(r.shape[:rd], dtype=torch.uint8))
                assert codes[i].dtype == torch.uint8 and codes[i].shape == want.shape
                assert torch.equal(codes[i], want), (rule, t, i, codes[i], want)
                seen.update(codes[i].reshape(-1).tolist())
    worst["codes"] = seen
    return worst

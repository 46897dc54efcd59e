"""The fast path follows what torch.optim honours (regressions found in review):

1. torch's Adam kernels on the fast path were handed lists of state tensors kept between steps
   (keyed by the parameters' ids): a user who cleared or replaced ``opt.state`` entries had the
   fast path keep stepping the orphaned tensors, ``opt.state`` left empty (a checkpoint without
   the moments) and the parameters off the reference path.
2. A parameter given another shape by ``p.data = ...`` after its state was found dense: torch's
   fused kernels were handed the old-shape state unchecked (the reference raises; with more
   elements than the state, the kernel wrote past it and corrupted the heap).
"""
import pytest
import torch
from torch import nn

import sandbox


# --- 1. fast path: state edited by the user ------------------------------------------------------
def _edit(kind, opt, ps):
    if kind == "clear":
        opt.state.clear()
    elif kind == "del":
        del opt.state[ps[1]]
    else:  # one moment replaced, as a user resetting it would
        opt.state[ps[0]]["exp_avg"] = torch.zeros_like(ps[0])


@pytest.mark.parametrize("rule", ["adam", "adamw"])
@pytest.mark.parametrize("kind", ["clear", "del", "replace"])
def test_fast_adam_follows_state_cleared_or_replaced_by_the_user(rule, kind):
    torch.manual_seed(0)
    w0 = [torch.randn(s, dtype=torch.float64) for s in ((3, 4), (5,), (2, 2, 2))]
    grads = [[torch.randn_like(w) for w in w0] for _ in range(5)]
    runs = {}
    for impl in ("fast", "reference"):
        ps = [nn.Parameter(w.clone()) for w in w0]
        opt = sandbox.create(rule, ps, lr=1e-2, weight_decay=0.1, impl=impl)
        for t, g in enumerate(grads):
            for p, gi in zip(ps, g):
                p.grad = gi.clone()
            opt.step()
            if t == 1:
                _edit(kind, opt, ps)
        runs[impl] = (ps, opt)
    (pf, of), (pr, orf) = runs["fast"], runs["reference"]
    assert of.last_impl == "fast"
    for a, r in zip(pf, pr):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=0)
        assert of.state[a].keys() == orf.state[r].keys() == {"step", "exp_avg", "exp_avg_sq"}
        for k in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(of.state[a][k], orf.state[r][k], rtol=1e-12, atol=0)
    assert len(of.state_dict()["state"]) == 3


# --- 2. fast path: a parameter given another shape -----------------------------------------------
@pytest.mark.parametrize("rule", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3)])  # never more elements: no heap corruption here
def test_a_reshaped_parameter_is_refused_before_any_write(rule, shape):
    for impl in ("reference", "fast"):
        torch.manual_seed(0)
        p = nn.Parameter(torch.randn(3, 4))
        kw = {"momentum": 0.9} if rule == "sgd" else {}
        opt = sandbox.create(rule, [p], lr=0.1, impl=impl, **kw)
        for _ in range(2):
            p.grad = torch.randn_like(p)
            opt.step()
        p.data = torch.randn(shape)
        p.grad = torch.randn_like(p)
        before = {k: v.clone() for k, v in opt.state[p].items()}
        with pytest.raises(ValueError, match=r"state '\w+' of group 0 param 0 \(shape \(\d, 3\).*"
                                             r"must have the parameter's shape"):
            opt.step()
        assert all(torch.equal(opt.state[p][k], v) for k, v in before.items())

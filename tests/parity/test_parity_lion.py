"""lion equals ``pytorch_optimizer.Lion`` (decoupled decay, its default) and the paper's Program 1.

float64, 60 steps, compared after every step: parameters and ``exp_avg``, relative error ≤ 1e-10;
on the small net and on the random tensors, with decay, other betas, two param groups, and both of
the package's code paths (per tensor and foreach).

Divergences of pytorch_optimizer.Lion, documented in sandbox/optim/rules/lion.py and tested here:
- with ``maximize`` it negates ``p.grad`` IN PLACE (the sandbox never writes a gradient); the steps
  are equal;
- ``weight_decouple=False`` (an L2 term added to the gradient before the sign) is not the paper's
  Lion and is not offered: it differs from lion at any λ > 0.
"""
import pytest
import torch
from pytorch_optimizer import Lion as PoLion

import sandbox
from compare import plain, run_net_pair, run_random_pair, run_random_vs_reference

STEPS = 60
KEYS = ["exp_avg"]


def _groups(named, g0, g1):
    """Two groups: tensors with more than one axis, and the rest."""
    return [dict(params=[p for _, p in named if p.ndim > 1], **g0),
            dict(params=[p for _, p in named if p.ndim <= 1], **g1)]


CASES = [
    # create kwargs, group 0 overrides, group 1 overrides
    (dict(lr=1e-3), {}, {}),
    (dict(lr=1e-3, weight_decay=0.1), {}, {}),
    (dict(lr=3e-4, betas=(0.95, 0.98), weight_decay=1.0), {}, {}),
    (dict(lr=1e-3), dict(lr=2e-3, weight_decay=0.3), dict(weight_decay=0.0)),
]


def _id(case):
    hp, g0, g1 = case
    return "-".join([f"{k}={v}" for k, v in hp.items()] + [f"g0{k}={v}" for k, v in g0.items()]
                    + [f"g1{k}={v}" for k, v in g1.items()])


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("problem", ["net", "random"])
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_lion_equals_pytorch_optimizer(case, problem, foreach):
    hp, g0, g1 = case
    actual = lambda nd: sandbox.create("lion", _groups(nd, g0, g1), **hp)
    expected = lambda nd: PoLion(_groups(nd, g0, g1), foreach=foreach, **hp)
    run = run_net_pair if problem == "net" else run_random_pair
    worst = run(actual, expected, KEYS, steps=STEPS)
    assert worst <= 1e-10


def _paper_step(lr, betas, wd):
    """Program 1 of the paper, one line per equation (m_0 = 0)."""
    b1, b2 = betas

    def step(names, params, grads, states):
        for theta, g, st in zip(params, grads, states):
            if g is None:
                continue
            m = st.setdefault("exp_avg", torch.zeros_like(theta))
            c = b1 * m + (1 - b1) * g                    # interpolation
            theta.mul_(1 - lr * wd)                      # decoupled decay
            theta.sub_(lr * torch.sign(c))               # sign update
            st["exp_avg"] = b2 * m + (1 - b2) * g        # momentum
    return step


@pytest.mark.parametrize("with_missing_grads", [False, True])
def test_lion_equals_the_paper(with_missing_grads):
    drop = (lambda s: {1, 6} if s % 3 == 1 else set()) if with_missing_grads else None
    run_random_vs_reference(
        lambda nd: sandbox.create("lion", plain(nd), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.5),
        _paper_step(1e-3, (0.9, 0.99), 0.5), KEYS, steps=STEPS, drop=drop)


def test_maximize_divergence_pytorch_optimizer_writes_the_gradient():
    torch.manual_seed(0)
    w0 = torch.randn(5, 4, dtype=torch.float64)
    a, b = w0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
    oa = sandbox.create("lion", [a], lr=1e-2, maximize=True, weight_decay=0.1)
    ob = PoLion([b], lr=1e-2, maximize=True, weight_decay=0.1, foreach=False)
    for _ in range(3):
        g = torch.randn_like(w0)
        a.grad, b.grad = g.clone(), g.clone()
        oa.step()
        ob.step()
        assert torch.equal(a.grad, g)            # the sandbox leaves p.grad alone
        assert torch.equal(b.grad, -g)           # the package negated it in place
        torch.testing.assert_close(a, b, rtol=1e-13, atol=0)


def test_coupled_decay_of_pytorch_optimizer_is_another_rule():
    torch.manual_seed(1)
    w0 = torch.randn(6, 3, dtype=torch.float64)
    a, b = w0.clone().requires_grad_(True), w0.clone().requires_grad_(True)
    oa = sandbox.create("lion", [a], lr=1e-2, weight_decay=1.0)
    ob = PoLion([b], lr=1e-2, weight_decay=1.0, weight_decouple=False, foreach=False)
    for _ in range(5):
        g = 0.01 * torch.randn_like(w0)  # small gradients: the L2 term flips signs
        a.grad, b.grad = g.clone(), g.clone()
        oa.step()
        ob.step()
    assert not torch.allclose(a, b, rtol=1e-6, atol=0)

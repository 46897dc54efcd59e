"""Self-checks of the parity machinery itself (no `sandbox` needed).

* the Adai hand reference equals `pytorch_optimizer.Adai` in the regime where the two coincide
  (every parameter has a gradient every step, so per-group = per-parameter step counters, and
  v̄ ≥ 1e-3 so the package's clamp of the global mean is inactive: asserted every step);
* the net and the random problem make the official AdamP/SGDP projection fire as designed:
  channel view on some tensors, layer view on others, nowhere on the rest, at every step;
  our `projection_view` agrees with the official `_projection` decision;
* the root-free references reproduce one step computed by hand with explicit numbers;
* the comparison driver does fail on a tiny hyperparameter difference.
"""

import math

import adamp
import pytest
import torch
from pytorch_optimizer import Adai as PoAdai

import compare
import nets
import references as ref

ADAI_EPS = 1e-3


def _groups_two(named, lrs, wds):
    """conv weights in group 0, everything else in group 1 (different lr and weight decay)."""
    g0 = [p for n, p in named if "conv" in n or "channel" in n]
    g1 = [p for n, p in named if not ("conv" in n or "channel" in n)]
    return [dict(params=g0, lr=lrs[0], weight_decay=wds[0]),
            dict(params=g1, lr=lrs[1], weight_decay=wds[1])]


def _adai_reference(named_lrs_wds, betas, decoupled):
    def step(names, params, grads, states):
        lrs = [named_lrs_wds(n)[0] for n in names]
        wds = [named_lrs_wds(n)[1] for n in names]
        return ref.adai_reference_step(params, grads, states, lrs, betas, ADAI_EPS, wds,
                                       decoupled)
    return step


@pytest.mark.parametrize("problem", ["net", "random"])
@pytest.mark.parametrize("decoupled,wds", [(False, (0.0, 0.0)), (False, (1e-3, 5e-4)),
                                           (True, (1e-2, 1e-3))])
def test_adai_reference_matches_pytorch_optimizer(problem, decoupled, wds):
    lrs = (0.2, 0.1)
    betas = (0.1, 0.99)

    def lr_wd(name):
        k = 0 if ("conv" in name or "channel" in name) else 1
        return lrs[k], wds[k]

    def make(named):
        return PoAdai(_groups_two(named, lrs, wds), lr=lrs[0], betas=betas, eps=ADAI_EPS,
                      weight_decouple=decoupled, foreach=False)

    vbars = []
    run = compare.run_net_vs_reference if problem == "net" else compare.run_random_vs_reference
    run(make, _adai_reference(lr_wd, betas, decoupled), ["exp_avg", "exp_avg_sq", "beta1_prod"],
        steps=120, on_step=lambda s, v: vbars.append(v))
    # the regime where pytorch_optimizer's clamp v̄ ≥ eps is inactive
    assert min(vbars) >= ADAI_EPS, f"v̄ fell to {min(vbars):.3e} < 1e-3: not the equivalent regime"


def test_adai_reference_global_mean_and_missing_grads():
    """Hand check of two details on a tiny problem: the mean is over ALL elements of all params
    with a gradient, and a parameter without gradient keeps its step counter and its state."""
    a = torch.tensor([1.0, 2.0], dtype=torch.float64)
    b = torch.tensor([[3.0]], dtype=torch.float64)
    ga = torch.tensor([0.5, -1.0], dtype=torch.float64)
    gb = torch.tensor([[2.0]], dtype=torch.float64)
    states = [dict(), dict()]
    vbar = ref.adai_reference_step([a, b], [ga, gb], states, lr=0.1)
    # step 1: v/bc2 = g²  ->  v̄ = (0.25 + 1 + 4)/3
    assert math.isclose(vbar, 5.25 / 3, rel_tol=1e-14)
    beta1 = (1 - 0.1 * torch.tensor([0.25, 1.0], dtype=torch.float64) / vbar).clamp(0, 1 - 1e-3)
    # m/bc1 = (1−β1)g/(1−β1) = g at step 1
    assert torch.allclose(a, torch.tensor([1.0, 2.0], dtype=torch.float64) - 0.1 * ga, rtol=1e-14)
    assert torch.allclose(states[0]["beta1_prod"], beta1, rtol=1e-14)
    vbar2 = ref.adai_reference_step([a, b], [None, gb], states, lr=0.1)
    assert states[0]["step"] == 1 and states[1]["step"] == 2
    bc2 = 1 - 0.99 ** 2
    v = 0.99 * 0.01 * 4.0 + 0.01 * 4.0
    assert math.isclose(vbar2, v / bc2, rel_tol=1e-14)  # only b contributes
    assert ga.tolist() == [0.5, -1.0]                  # gradient not mutated


def test_rootfree_references_by_hand():
    B, lam, lr = 4, 1e-4, 0.01
    th = torch.tensor([1.0, -2.0], dtype=torch.float64)
    g = torch.tensor([0.3, 0.1], dtype=torch.float64)
    st = [dict()]
    x = th.clone()
    ref.rfadamw_reference_step([x], [g], st, lr, (0.9, 0.999), lam, 0.1, B, bias_correction=True)
    m = 0.1 * g
    v = 0.999 / B + 0.001 * g * g
    bc1, bc2 = 0.1, 1 - 0.999
    expect = th * (1 - lr * 0.1) - (lr / bc1) * m / (B * v / bc2 + lam)
    assert torch.allclose(x, expect, rtol=1e-14, atol=0)
    assert torch.allclose(st[0]["exp_avg_sq"], v, rtol=1e-14, atol=0)

    st = [dict()]
    x = th.clone()
    for k in range(2):
        ref.rfrmsprop_reference_step([x], [g], st, lr, 0.9, 0.01, lam, 0.1, B)
    v1 = 0.99 / B + 0.01 * g * g
    d1 = g / (B * v1 + lam) + 0.1 * th
    x1 = th - lr * d1                       # buffer starts at zero: buf1 = d1
    v2 = 0.99 * v1 + 0.01 * g * g
    d2 = g / (B * v2 + lam) + 0.1 * x1
    buf2 = 0.9 * d1 + d2
    assert torch.allclose(x, x1 - lr * buf2, rtol=1e-14, atol=0)
    assert torch.allclose(st[0]["momentum_buffer"], buf2, rtol=1e-14, atol=0)


# ---------------------------------------------------------------------------------------
# the projection fires where designed
# ---------------------------------------------------------------------------------------
def _official_decision(opt, p, grad, delta, eps):
    """Ask the official `_projection` whether it projects (it returns wd_ratio then); the
    official `step` only calls it for ndim > 1."""
    if p.ndim <= 1:
        return False
    _, wd = opt._projection(p, grad, torch.zeros_like(p), delta, 0.5, eps)
    return wd == 0.5


@pytest.mark.parametrize("official", ["adamp", "sgdp"])
def test_net_projection_fires_in_both_views(official):
    net = nets.make_net()
    if official == "adamp":
        opt = adamp.AdamP(net.parameters(), lr=1e-2, weight_decay=1e-2, nesterov=True)
    else:
        opt = adamp.SGDP(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-2)
    seen = {}
    for s in range(100):
        nets.net_backward(net, s)
        for n, p in net.named_parameters():
            assert p.grad.norm() > 1e-4, f"{n} has a vanishing gradient at step {s}: dead net"
            view = ref.projection_view(p.data, p.grad)
            seen.setdefault(n, set()).add(view)
            assert _official_decision(opt, p, p.grad, 0.1, 1e-8) == (view is not None), (n, s)
        opt.step()
    for n, view in nets.EXPECTED_VIEW.items():
        assert seen[n] == {view}, f"{n}: views seen {seen[n]}, expected always {view}"
    assert all(seen[n] == {None} for n, p in net.named_parameters() if p.ndim == 1)


@pytest.mark.parametrize("leak", [0.0, 0.3])
def test_random_problem_projection_fires(leak):
    prob = nets.RandomProblem(leak=leak)
    ps = prob.clone_params()
    opt = adamp.AdamP([p.requires_grad_(False) for p in ps])
    for s in range(30):
        gs = prob.grads(ps, s)
        for n, p, g in zip(prob.names, ps, gs):
            view = ref.projection_view(p, g)
            if n in nets.EXPECTED_RANDOM_VIEW:
                assert view == nets.EXPECTED_RANDOM_VIEW[n], (n, s, view)
            assert _official_decision(opt, p, g, 0.1, 1e-8) == (view is not None), (n, s)
            if leak and n.startswith(("channel", "layer")):
                # the leaked radial part is really there: |cos| ≈ leak x threshold
                c, sqrt_len = ref.max_cosine(p, g, view)
                assert 0.9 * leak < c * sqrt_len / 0.1 < 1.1 * leak, (n, s, c * sqrt_len / 0.1)
            p.sub_(0.05 * g)


def test_driver_detects_a_tiny_difference():
    """The every-step comparison fails for lr 0.05 vs 0.05·(1 + 1e-8)."""
    with pytest.raises(AssertionError, match="worst relative error"):
        compare.run_net_pair(
            lambda nd: torch.optim.SGD(compare.plain(nd), lr=0.05, momentum=0.9, foreach=False),
            lambda nd: torch.optim.SGD(compare.plain(nd), lr=0.05 * (1 + 1e-8), momentum=0.9,
                                       foreach=False),
            ["momentum_buffer"], steps=5)

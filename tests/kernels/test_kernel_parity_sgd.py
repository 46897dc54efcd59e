"""sgd_cpu.step against the stage path: official SGDP (first="zeros", buffer "momentum",
decoupled decay / (1 − μ), projection written back into the buffer) and torch's SGD with the
projection (first="input", buffer "momentum_buffer", coupled L2, momentum > 0 and = 0)."""
import pytest
import torch

import sandbox
from kernel_cases import rel_err, run_pair
from sandbox.optim.kernels import sgd_cpu


def kernel(rule: str, hp: dict, rd: int):
    sgdp = rule == "sgdp"

    def step(ps, gs, states, maximize):
        return sgd_cpu.step(
            ps, gs, states, lr=hp["lr"], momentum=hp.get("momentum", 0.0),
            dampening=hp.get("dampening", 0.0), weight_decay=hp.get("weight_decay", 0.0),
            nesterov=hp.get("nesterov", False), first="zeros" if sgdp else "input",
            sgdp_decay_scaling=sgdp, coupled=not sgdp, project=hp.get("project", sgdp),
            project_momentum=hp.get("project_momentum", sgdp), delta=hp.get("delta", 0.1),
            wd_ratio=hp.get("wd_ratio", 0.1),
            eps=hp.get("eps", 1e-8) if sgdp else hp.get("proj_eps", 1e-8), replica_dims=rd,
            maximize=maximize, buffer_key="momentum" if sgdp else "momentum_buffer")
    return step


CASES = [
    ("sgdp", dict(lr=0.1, momentum=0.9, weight_decay=1e-2, eps=1e-3)),
    ("sgdp", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)),
    ("sgdp", dict(lr=0.1, momentum=0.8, dampening=0.3, weight_decay=0.0, wd_ratio=0.5)),
    ("sgdp", dict(lr=0.1, momentum=0.0, weight_decay=1e-2, eps=1e-4)),
    ("sgdp", dict(lr=0.1, momentum=0.9, weight_decay=1e-2, project_momentum=False)),
    ("sgd", dict(lr=0.1, momentum=0.9, weight_decay=1e-2, project=True, proj_eps=1e-3)),
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True, project=True)),
    ("sgd", dict(lr=0.1, momentum=0.7, dampening=0.2, project=True, project_momentum=True)),
    ("sgd", dict(lr=0.1, momentum=0.0, weight_decay=1e-2, project=True, proj_eps=1e-4)),
    ("sgd", dict(lr=0.1, momentum=0.9, weight_decay=1e-2)),
    ("sgd", dict(lr=0.1, momentum=0.0)),
]


@pytest.mark.parametrize("rd", [0, 1, 2])
@pytest.mark.parametrize("rule,hp", CASES)
def test_float64(rule, hp, rd):
    worst = run_pair(rule, hp, rd, torch.float64, kernel(rule, hp, rd))
    assert worst["codes"] == ({0, 1, 2} if hp.get("project", rule == "sgdp") else {0})


@pytest.mark.parametrize("rule,hp", [CASES[0], CASES[6], CASES[8]])
def test_maximize(rule, hp):
    run_pair(rule, hp, 1, torch.float64, kernel(rule, hp, 1), maximize=True)


@pytest.mark.parametrize("rule,hp", [CASES[0], CASES[5], CASES[8]])
@pytest.mark.parametrize("rd", [0, 1])
def test_float32(rule, hp, rd):
    run_pair(rule, hp, rd, torch.float32, kernel(rule, hp, rd))


def test_state_keys():
    """torch's SGD keeps no buffer with momentum 0; SGDP always keeps "momentum"."""
    p, g = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    g0 = g.clone()
    s_sgd, s_sgdp = [{}], [{}]
    kernel("sgd", dict(lr=0.1, momentum=0.0, project=True), 0)([p.clone()], [g], s_sgd, False)
    kernel("sgdp", dict(lr=0.1, momentum=0.0), 0)([p.clone()], [g], s_sgdp, False)
    assert s_sgd == [{}] and set(s_sgdp[0]) == {"momentum"}
    assert torch.equal(g, g0)


def test_two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rule, hp = CASES[0]
        run_pair(rule, hp, 0, torch.float64, kernel(rule, hp, 0), steps=4)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("rd", [0, 1])
def test_big_tensors(rd):
    from kernel_cases import BIG
    rule, hp = CASES[0]
    worst = run_pair(rule, hp, rd, torch.float64, kernel(rule, hp, rd), steps=3, shape_list=BIG[rd])
    assert worst["codes"] == {0, 1, 2}


def test_state_interchangeable():
    from kernel_cases import run_switch
    for rule, hp in (CASES[0], CASES[5]):
        run_switch(rule, hp, kernel(rule, hp, 1), rd=1)


def test_sgdp_without_projection():
    """Decay λ/(1 − μ) where no projection stage sets a factor."""
    hp = dict(lr=0.1, momentum=0.9, weight_decay=1e-2, project=False)
    worst = run_pair("sgdp", hp, 0, torch.float64, kernel("sgdp", hp, 0))
    assert worst["codes"] == {0}


def test_zero_row_and_zero_eps():
    """eps = 0 and a zero weight row: that row's cosine is 0/0 = NaN, so the channel view fails
    (torch's amax propagates NaN); the layer view still fires on a gradient orthogonal to the
    whole tensor, with ŵ = w/‖w‖."""
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    w[1] = 0.0
    g = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    g -= w * (w * g).sum() / (w * w).sum()
    hp = dict(lr=0.1, momentum=0.9, weight_decay=1e-2, eps=0.0)
    ref = w.clone().requires_grad_()
    opt = sandbox.create("sgdp", [ref], impl="reference", **hp)
    ref.grad = g.clone()
    opt.step()
    ker, states = w.clone(), [{}]
    codes = kernel("sgdp", hp, 0)([ker], [g.clone()], states, False)
    assert int(opt.last_info[ref]["projection"]) == 2 and int(codes[0]) == 2
    assert rel_err(ker, ref.detach()) <= 1e-12
    assert rel_err(states[0]["momentum"], opt.state[ref]["momentum"]) <= 1e-12

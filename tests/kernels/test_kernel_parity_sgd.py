"""sgd_cpu.step against the stage path: official SGDP (first="zeros", buffer "momentum",
decoupled decay / (1 − μ), projection written back into the buffer) and torch's SGD with the
projection (first="input", buffer "momentum_buffer", coupled L2, momentum > 0 and = 0)."""
import pytest
import torch

from kernel_cases import run_pair
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

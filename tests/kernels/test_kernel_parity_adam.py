"""adam_cpu.step against the stage path: adamw, adamp (decoupled) and adam (coupled L2, with and
without projection), float64 to 1e-12 and float32, replicas, Nesterov, decay, maximize."""
import pytest
import torch

from kernel_cases import run_pair
from sandbox.optim.kernels import adam_cpu

BASE = dict(lr=2e-2, betas=(0.9, 0.99), eps=1e-6)


def kernel(rule: str, hp: dict, rd: int):
    spec = {"adamw": (True, False), "adamp": (True, True), "adam": (False, None)}[rule]
    decoupled, project = spec[0], hp.get("project", spec[1])

    def step(ps, gs, states, maximize):
        return adam_cpu.step(ps, gs, states, lr=hp["lr"], beta1=hp["betas"][0], beta2=hp["betas"][1],
                             eps=hp["eps"], weight_decay=hp.get("weight_decay", 0.0),
                             decoupled=decoupled, nesterov=hp.get("nesterov", False),
                             project=bool(project), delta=hp.get("delta", 0.1),
                             wd_ratio=hp.get("wd_ratio", 0.1), replica_dims=rd, maximize=maximize)
    return step


CASES = [
    ("adamw", dict(weight_decay=0.1)),
    ("adamw", dict(weight_decay=0.0, nesterov=True)),
    ("adamp", dict(weight_decay=0.1, wd_ratio=0.3)),
    ("adamp", dict(weight_decay=0.1, nesterov=True, eps=1e-3)),
    ("adamp", dict(weight_decay=0.0, delta=0.2)),
    ("adam", dict(weight_decay=0.05, project=True)),
    ("adam", dict(weight_decay=0.0, project=True, eps=1e-3)),
    ("adam", dict(weight_decay=0.05)),
]


@pytest.mark.parametrize("rd", [0, 1, 2])
@pytest.mark.parametrize("rule,extra", CASES)
def test_float64(rule, extra, rd):
    hp = {**BASE, **extra}
    worst = run_pair(rule, hp, rd, torch.float64, kernel(rule, hp, rd))
    projected = hp.get("project", rule == "adamp")
    assert worst["codes"] == ({0, 1, 2} if projected else {0})


@pytest.mark.parametrize("rule,extra", [CASES[0], CASES[3], CASES[5]])
def test_maximize(rule, extra):
    hp = {**BASE, **extra}
    run_pair(rule, hp, 1, torch.float64, kernel(rule, hp, 1), maximize=True)


@pytest.mark.parametrize("rule,extra", [CASES[0], CASES[2], CASES[5]])
@pytest.mark.parametrize("rd", [0, 1])
def test_float32(rule, extra, rd):
    hp = {**BASE, **extra}
    run_pair(rule, hp, rd, torch.float32, kernel(rule, hp, rd))


def test_two_threads():
    """Several chunks per pass (the layout cuts the work per thread): same numbers."""
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        hp = {**BASE, **CASES[2][1]}
        run_pair("adamp", hp, 1, torch.float64, kernel("adamp", hp, 1), steps=4)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def test_grads_untouched_and_empty_list():
    ps = [torch.randn(4, 3, dtype=torch.float64)]
    gs = [torch.randn(4, 3, dtype=torch.float64)]
    g0 = gs[0].clone()
    states = [{}]
    hp = {**BASE, "weight_decay": 0.1}
    version = ps[0]._version
    kernel("adamp", hp, 0)(ps, gs, states, True)
    assert torch.equal(gs[0], g0)
    assert ps[0]._version > version  # autograd sees the in-place write
    assert states[0]["step"].dtype == torch.float32 and states[0]["step"].dim() == 0
    assert kernel("adamp", hp, 0)([], [], [], False) == []


@pytest.mark.parametrize("rd", [0, 1])
def test_big_tensors(rd):
    from kernel_cases import BIG
    hp = {**BASE, **CASES[3][1]}
    worst = run_pair("adamp", hp, rd, torch.float64, kernel("adamp", hp, rd), steps=3,
                     shape_list=BIG[rd])
    assert worst["codes"] == {0, 1, 2}


def test_state_interchangeable():
    from kernel_cases import run_switch
    hp = {**BASE, **CASES[3][1]}
    run_switch("adamp", hp, kernel("adamp", hp, 0))

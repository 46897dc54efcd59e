"""adai_cpu.reduce / update against ``adaptive_inertia``'s two sweeps: adai (coupled L2) and
adaiw (decoupled), replicas (v̄ per replica), the v̄ = 0 guard, float64 to 1e-12 and float32."""
import pytest
import torch

from kernel_cases import run_pair
from sandbox.optim.kernels import adai_cpu


def kernel(rule: str, hp: dict, rd: int):
    decoupled = rule == "adaiw"
    beta0, beta2 = hp.get("betas", (0.1, 0.99))
    wd = hp.get("weight_decay", 0.0)

    def step(ps, gs, states, maximize):
        # the adapter's part: one reduce per group, v̄ = Σ total / Σ count per replica
        total, count = adai_cpu.reduce(ps, gs, states, beta2=beta2, weight_decay=wd,
                                       decoupled=decoupled, replica_dims=rd, maximize=maximize)
        adai_cpu.update(ps, gs, states, total / count, lr=hp["lr"], beta0=beta0, beta2=beta2,
                        eps=hp.get("eps", 1e-3), weight_decay=wd, decoupled=decoupled,
                        replica_dims=rd, maximize=maximize)
        return None
    return step


CASES = [
    ("adai", dict(lr=0.1)),
    ("adai", dict(lr=0.1, weight_decay=5e-2, betas=(0.2, 0.9))),
    ("adaiw", dict(lr=0.1, weight_decay=5e-2)),
    ("adaiw", dict(lr=0.3, weight_decay=1e-2, betas=(0.5, 0.99), eps=0.05)),
]


@pytest.mark.parametrize("rd", [0, 1, 2])
@pytest.mark.parametrize("rule,hp", CASES)
def test_float64(rule, hp, rd):
    run_pair(rule, hp, rd, torch.float64, kernel(rule, hp, rd))


@pytest.mark.parametrize("rule,hp", [CASES[1], CASES[2]])
def test_maximize(rule, hp):
    run_pair(rule, hp, 1, torch.float64, kernel(rule, hp, 1), maximize=True)


@pytest.mark.parametrize("rule,hp", [CASES[1], CASES[3]])
@pytest.mark.parametrize("rd", [0, 1])
def test_float32(rule, hp, rd):
    run_pair(rule, hp, rd, torch.float32, kernel(rule, hp, rd))


def test_zero_gradients_guard():
    """v̄ = 0 (every gradient so far zero): ratio 1, β1 = 1 − β0, a zero step, no NaN; the
    per-replica sum and count as the stage returns them."""
    p = torch.randn(2, 3, 4, dtype=torch.float64)
    p0, states = p.clone(), [{}]
    total, count = adai_cpu.reduce([p], [torch.zeros_like(p)], states, beta2=0.99,
                                   weight_decay=0.0, decoupled=True, replica_dims=1, maximize=False)
    assert total.shape == (2,) and total.dtype == torch.float64 and count == 12
    assert torch.equal(total, torch.zeros(2, dtype=torch.float64))
    adai_cpu.update([p], [torch.zeros_like(p)], states, total / count, lr=0.1, beta0=0.1,
                    beta2=0.99, eps=1e-3, weight_decay=0.0, decoupled=True, replica_dims=1,
                    maximize=False)
    assert torch.equal(p, p0)
    assert torch.equal(states[0]["beta1_prod"], torch.full_like(p, 0.9))


def test_two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rule, hp = CASES[2]
        run_pair(rule, hp, 1, torch.float64, kernel(rule, hp, 1), steps=4)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("rd", [0, 1])
def test_big_tensors(rd):
    from kernel_cases import BIG
    old = torch.get_num_threads()
    torch.set_num_threads(2)  # per-chunk partial sums of one replica
    try:
        rule, hp = CASES[2]
        run_pair(rule, hp, rd, torch.float64, kernel(rule, hp, rd), steps=3, shape_list=BIG[rd])
    finally:
        torch.set_num_threads(old)


def test_state_interchangeable():
    from kernel_cases import run_switch
    rule, hp = CASES[1]
    run_switch(rule, hp, kernel(rule, hp, 1), rd=1)

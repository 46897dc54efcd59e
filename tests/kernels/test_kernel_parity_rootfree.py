"""rootfree_cpu against the stage path: rfadamw (bias correction on/off, decoupled decay) and
rfrmsprop (L2 after preconditioning, heavy ball from zeros), float64 to 1e-12 and float32."""
import pytest
import torch

from kernel_cases import run_pair
from sandbox.optim.kernels import rootfree_cpu


def rfadamw(hp: dict):
    def step(ps, gs, states, maximize):
        rootfree_cpu.rfadamw_step(ps, gs, states, lr=hp["lr"], beta1=hp["betas"][0],
                                  beta2=hp["betas"][1], eps=hp["eps"],
                                  weight_decay=hp.get("weight_decay", 0.0),
                                  batch_size=hp["batch_size"],
                                  bias_correction=hp.get("bias_correction", False),
                                  maximize=maximize)
        return None
    return step


def rfrmsprop(hp: dict):
    def step(ps, gs, states, maximize):
        rootfree_cpu.rfrmsprop_step(ps, gs, states, lr=hp["lr"], momentum=hp["momentum"],
                                    lr_cov=hp["lr_cov"], eps=hp["eps"],
                                    weight_decay=hp.get("weight_decay", 0.0),
                                    batch_size=hp["batch_size"], maximize=maximize)
        return None
    return step


KERNELS = {"rfadamw": rfadamw, "rfrmsprop": rfrmsprop}
CASES = [
    ("rfadamw", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-4, batch_size=32)),
    ("rfadamw", dict(lr=1e-3, betas=(0.8, 0.99), eps=1e-3, batch_size=8, weight_decay=0.1,
                     bias_correction=True)),
    ("rfrmsprop", dict(lr=5e-3, momentum=0.9, lr_cov=1e-2, eps=1e-4, batch_size=32)),
    ("rfrmsprop", dict(lr=5e-3, momentum=0.5, lr_cov=0.3, eps=1e-3, batch_size=4,
                       weight_decay=1e-2)),
]


@pytest.mark.parametrize("rd", [0, 1])
@pytest.mark.parametrize("rule,hp", CASES)
def test_float64(rule, hp, rd):
    run_pair(rule, hp, rd, torch.float64, KERNELS[rule](hp))


@pytest.mark.parametrize("rule,hp", [CASES[1], CASES[3]])
def test_maximize(rule, hp):
    run_pair(rule, hp, 0, torch.float64, KERNELS[rule](hp), maximize=True)


@pytest.mark.parametrize("rule,hp", CASES)
def test_float32(rule, hp):
    run_pair(rule, hp, 0, torch.float32, KERNELS[rule](hp))


def test_two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for rule, hp in (CASES[1], CASES[3]):
            run_pair(rule, hp, 0, torch.float64, KERNELS[rule](hp), steps=4)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("rd", [0, 1])
def test_big_tensors(rd):
    from kernel_cases import BIG
    for rule, hp in (CASES[1], CASES[3]):
        run_pair(rule, hp, 0, torch.float64, KERNELS[rule](hp), steps=3, shape_list=BIG[rd])


def test_state_interchangeable():
    from kernel_cases import run_switch
    for rule, hp in (CASES[1], CASES[3]):
        run_switch(rule, hp, KERNELS[rule](hp))

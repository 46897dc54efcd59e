"""sgdp / adamp equal the official `adamp` 0.3.0 package (adamp.SGDP, adamp.AdamP).

The official 0.3.0 code runs unmodified on torch 2.13 (it already uses the `add_(t, alpha=)`
signatures; no shim needed).  Its `.view` needs contiguous weights, which all of ours are.

On the net the projection fires in the channel view (conv+BN, linear+BN), in the layer view
(conv+GroupNorm(1,C)) and nowhere (classifier, 1-D tensors) at every step (asserted in
test_parity_references.py); on the random tensors likewise by construction.  120 steps,
compared after every step: parameters and state (`momentum` for SGDP; `step`, `exp_avg`,
`exp_avg_sq` for AdamP) to relative error ≤ 1e-10.
"""

import adamp
import pytest
import torch

import nets
import references as ref
import sandbox
from compare import compare, plain, run_net_pair, run_random_pair

STEPS = 120

SGDP_CASES = [
    dict(lr=0.05),
    dict(lr=0.05, weight_decay=1e-2),
    dict(lr=0.05, momentum=0.9),                               # projects the stored buffer too
    dict(lr=0.05, momentum=0.9, weight_decay=1e-2),
    dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=5e-2, wd_ratio=0.5),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2, delta=0.2),
]
ADAMP_CASES = [
    {},                                                        # all defaults
    dict(lr=1e-2),
    dict(lr=1e-2, weight_decay=1e-2),
    dict(lr=1e-2, nesterov=True),
    dict(lr=1e-2, nesterov=True, weight_decay=1e-2),
    dict(lr=5e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, wd_ratio=0.5, delta=0.2),
]
CASES = [("sgdp", c) for c in SGDP_CASES] + [("adamp", c) for c in ADAMP_CASES]
OFFICIAL = {"sgdp": adamp.SGDP, "adamp": adamp.AdamP}
KEYS = {"sgdp": ["momentum"], "adamp": ["step", "exp_avg", "exp_avg_sq"]}


def _id(case):
    name, hp = case
    return name + "-" + ("-".join(f"{k}={v}" for k, v in hp.items()) or "defaults")


@pytest.mark.parametrize("problem", ["net", "random"])
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_projected_equals_official(case, problem):
    name, hp = case
    run = run_net_pair if problem == "net" else run_random_pair
    run(lambda nd: sandbox.create(name, plain(nd), **hp),
        lambda nd: OFFICIAL[name](plain(nd), **hp), KEYS[name], steps=STEPS)


@pytest.mark.parametrize("name", ["sgdp", "adamp"])
def test_projected_param_groups_and_missing_grads(name):
    hp0 = dict(lr=0.05, momentum=0.9, weight_decay=1e-2) if name == "sgdp" else \
        dict(lr=1e-2, weight_decay=1e-2)
    hp1 = dict(lr=0.02, weight_decay=5e-2, wd_ratio=0.3)

    def groups(nd):
        return [dict(params=[p for n, p in nd if "conv" in n], **hp1),
                dict(params=[p for n, p in nd if "conv" not in n])]

    drop = lambda s: {"fc_bn.weight", "bn2d.bias"} if s % 4 == 2 else set()
    run_net_pair(lambda nd: sandbox.create(name, groups(nd), **hp0),
                 lambda nd: OFFICIAL[name](groups(nd), **hp0), KEYS[name], steps=STEPS,
                 drop=drop)


def test_sgdp_project_momentum_false_keeps_the_raw_buffer():
    """`project_momentum=False` (timm's behaviour): the stored buffer is the plain heavy ball
    b ← μb + (1−τ)g, never projected; the parameter step is still the projected buffer."""
    mu, tau, lr = 0.9, 0.1, 0.05
    prob = nets.RandomProblem()
    ps = [p.clone().requires_grad_(True) for p in prob.params]
    opt = sandbox.create("sgdp", ps, lr=lr, momentum=mu, dampening=tau, project_momentum=False)
    bufs = [torch.zeros_like(p) for p in ps]
    projected_somewhere = False
    for s in range(30):
        gs = prob.set_grads(ps, s)
        before = [p.detach().clone() for p in ps]
        opt.step()
        for i, (p, g) in enumerate(zip(ps, gs)):
            bufs[i] = mu * bufs[i] + (1 - tau) * g
            view = ref.projection_view(before[i], g)
            projected_somewhere |= view is not None
            step = ref.project_radial(before[i], bufs[i], view)
            compare([opt.state[p]["momentum"], p.detach()], [{}, {}],
                    [bufs[i], before[i] - lr * step], [{}, {}], [],
                    names=[f"{prob.names[i]}.momentum", prob.names[i]],
                    context=f"sgdp project_momentum=False, step {s + 1}")
    assert projected_somewhere

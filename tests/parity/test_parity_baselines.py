"""sgd / adam / adamw equal torch.optim.SGD / Adam / AdamW (foreach=False).

On the float64 net (conv+BN, conv+GN, linear+BN, classifier) and on the random tensors,
120 steps, compared after EVERY step: parameters and the state keys of torch
(`momentum_buffer`; `step`, `exp_avg`, `exp_avg_sq`), relative error ≤ 1e-10.
"""

import pytest
import torch

import sandbox
from compare import plain, run_net_pair, run_random_pair

STEPS = 120

SGD_CASES = [
    {},                                                        # all defaults (lr 1e-3)
    dict(lr=0.05),
    dict(lr=0.05, weight_decay=1e-2),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-2),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
]
ADAM_CASES = [
    {},
    dict(lr=1e-2),
    dict(lr=1e-2, weight_decay=1e-2),
    dict(lr=5e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
]
ADAMW_CASES = [
    {},                                                        # default weight_decay 1e-2
    dict(lr=1e-2, weight_decay=0.0),
    dict(lr=1e-2),
    dict(lr=5e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
]

TORCH = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
KEYS = {"sgd": ["momentum_buffer"], "adam": ["step", "exp_avg", "exp_avg_sq"],
        "adamw": ["step", "exp_avg", "exp_avg_sq"]}

CASES = ([("sgd", c) for c in SGD_CASES] + [("adam", c) for c in ADAM_CASES]
         + [("adamw", c) for c in ADAMW_CASES])


def _id(case):
    name, hp = case
    return name + "-" + ("-".join(f"{k}={v}" for k, v in hp.items()) or "defaults")


@pytest.mark.parametrize("problem", ["net", "random"])
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_baseline_equals_torch(case, problem):
    name, hp = case
    actual = lambda nd: sandbox.create(name, plain(nd), **hp)
    expected = lambda nd: TORCH[name](plain(nd), foreach=False, **hp)
    run = run_net_pair if problem == "net" else run_random_pair
    run(actual, expected, KEYS[name], steps=STEPS)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_baseline_param_groups_and_missing_grads(name):
    """Two param groups with their own lr / weight decay, and a parameter whose gradient is
    None on every third step (torch skips it: no state change, no decay)."""
    hp0 = dict(lr=0.05, momentum=0.9, weight_decay=1e-2) if name == "sgd" else dict(lr=1e-2)
    hp1 = dict(lr=0.02, weight_decay=5e-2) if name != "sgd" else dict(lr=0.1, weight_decay=0.0)

    def groups(nd):
        return [dict(params=[p for n, p in nd if "weight" in n], **hp1),
                dict(params=[p for n, p in nd if "weight" not in n])]

    drop = lambda s: {"fc_out.bias", "conv_gn.weight"} if s % 3 == 1 else set()
    run_net_pair(lambda nd: sandbox.create(name, groups(nd), **hp0),
                 lambda nd: TORCH[name](groups(nd), foreach=False, **hp0),
                 KEYS[name], steps=STEPS, drop=drop)

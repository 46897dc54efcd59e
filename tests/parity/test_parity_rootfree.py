"""rfadamw / rfrmsprop equal the hand reference steps of the spec (no library ships them).

With and without weight decay, bias correction (rfadamw), momentum (rfrmsprop), defaults
included; on the net (batch_size = the net's batch, 8) and the random tensors (batch_size 16),
with param groups and missing gradients in one case each.  120 steps, compared after every step:
parameters and state (`step`, `exp_avg`, `exp_avg_sq` / `exp_avg_sq`, `momentum_buffer`),
relative error ≤ 1e-10.
"""

import pytest

import nets
import references as ref
import sandbox
from compare import plain, run_net_vs_reference, run_random_vs_reference

STEPS = 120

RFADAMW_DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-4, weight_decay=0.0,
                        bias_correction=False)
RFRMSPROP_DEFAULTS = dict(lr=4.98e-3, momentum=0.961, lr_cov=1.18e-3, eps=1e-4, weight_decay=0.0)

RFADAMW_CASES = [
    {},                                                        # contract defaults
    dict(lr=1e-3, weight_decay=1e-2),
    dict(lr=1e-3, bias_correction=True),
    dict(lr=5e-4, betas=(0.8, 0.99), eps=3e-4, weight_decay=0.1, bias_correction=True),
]
RFRMSPROP_CASES = [
    {},                                                        # contract (tuned) defaults
    dict(momentum=0.0),
    dict(weight_decay=2.3e-3),
    dict(lr=2e-3, momentum=0.9, lr_cov=1e-2, eps=5e-5, weight_decay=1e-2),
]
CASES = [("rfadamw", c) for c in RFADAMW_CASES] + [("rfrmsprop", c) for c in RFRMSPROP_CASES]
KEYS = {"rfadamw": ["step", "exp_avg", "exp_avg_sq"],
        "rfrmsprop": ["exp_avg_sq", "momentum_buffer"]}


def _reference(name, hp, batch_size):
    if name == "rfadamw":
        h = {**RFADAMW_DEFAULTS, **hp}
        return lambda names, ps, gs, st: ref.rfadamw_reference_step(
            ps, gs, st, h["lr"], h["betas"], h["eps"], h["weight_decay"], batch_size,
            h["bias_correction"])
    h = {**RFRMSPROP_DEFAULTS, **hp}
    return lambda names, ps, gs, st: ref.rfrmsprop_reference_step(
        ps, gs, st, h["lr"], h["momentum"], h["lr_cov"], h["eps"], h["weight_decay"], batch_size)


def _id(case):
    name, hp = case
    return name + "-" + ("-".join(f"{k}={v}" for k, v in hp.items()) or "defaults")


@pytest.mark.parametrize("problem", ["net", "random"])
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_rootfree_equals_reference(case, problem):
    name, hp = case
    B = nets.BATCH if problem == "net" else 16
    actual = lambda nd: sandbox.create(name, plain(nd), batch_size=B, **hp)
    run = run_net_vs_reference if problem == "net" else run_random_vs_reference
    run(actual, _reference(name, hp, B), KEYS[name], steps=STEPS)


@pytest.mark.parametrize("name", ["rfadamw", "rfrmsprop"])
def test_rootfree_param_groups_and_missing_grads(name):
    """Group 0 (the weights) with its own lr and weight decay; some gradients None."""
    base = dict(lr=1e-3, weight_decay=1e-2) if name == "rfadamw" else dict(weight_decay=1e-3)
    over = dict(lr=2e-3, weight_decay=0.0) if name == "rfadamw" else dict(lr=1e-3,
                                                                          weight_decay=1e-2)
    B = nets.BATCH
    ref_base, ref_over = _reference(name, base, B), _reference(name, {**base, **over}, B)

    def reference(names, ps, gs, st):
        sel = ["weight" in n for n in names]
        for flag, step in ((True, ref_over), (False, ref_base)):
            idx = [i for i, s in enumerate(sel) if s == flag]
            step([names[i] for i in idx], [ps[i] for i in idx], [gs[i] for i in idx],
                 [st[i] for i in idx])

    def groups(nd):
        return [dict(params=[p for n, p in nd if "weight" in n], **over),
                dict(params=[p for n, p in nd if "weight" not in n])]

    drop = lambda s: {"fc_out.bias", "conv_gn.weight"} if s % 3 == 1 else set()
    run_net_vs_reference(lambda nd: sandbox.create(name, groups(nd), batch_size=B, **base),
                         reference, KEYS[name], steps=STEPS, drop=drop)

"""adai / adaiw equal the official Adai rule (hand reference `adai_reference_step`), and equal
`pytorch_optimizer.Adai` in the regime where that package coincides with the official rule.

Reference tests: two param groups with different lr and weight decay, and parameters that have
no gradient on some steps (their per-parameter step counter then lags behind: this is where a
per-group counter would differ).  120 steps, compared after every step: parameters and
`step`, `exp_avg`, `exp_avg_sq`, `beta1_prod`, relative error ≤ 1e-10.

pytorch_optimizer.Adai keeps a per-GROUP step counter and clamps v̄ at eps (1e-3); it coincides
with the official rule when every parameter has a gradient on every step and v̄ ≥ 1e-3, which is
asserted on every step from the package's own state.
"""

import pytest
import torch
from pytorch_optimizer import Adai as PoAdai

import nets
import references as ref
import sandbox
from compare import plain, run_net_pair, run_net_vs_reference, run_random_pair, \
    run_random_vs_reference

STEPS = 120
KEYS = ["step", "exp_avg", "exp_avg_sq", "beta1_prod"]


def _is_group0(name):
    return "conv" in name or "channel" in name or "layer" in name


def _groups(named, g0, g1):
    return [dict(params=[p for n, p in named if _is_group0(n)], **g0),
            dict(params=[p for n, p in named if not _is_group0(n)], **g1)]


def _reference(g0, g1, betas, eps, decoupled, default_lr):
    """Adapter: per-parameter lr / weight decay from the group the parameter belongs to."""
    def step(names, params, grads, states):
        hp = [g0 if _is_group0(n) else g1 for n in names]
        lrs = [h.get("lr", default_lr) for h in hp]
        wds = [h.get("weight_decay", 0.0) for h in hp]
        return ref.adai_reference_step(params, grads, states, lrs, betas, eps, wds, decoupled)
    return step


CASES = [
    # name, create kwargs, group 0 overrides, group 1 overrides
    ("adai", dict(lr=0.1), dict(lr=0.2), {}),
    ("adai", dict(lr=0.1), dict(lr=0.2, weight_decay=1e-3), dict(weight_decay=5e-4)),
    ("adai", dict(lr=0.3, betas=(0.2, 0.95), eps=1e-2, weight_decay=1e-3), dict(lr=0.1), {}),
    ("adaiw", dict(lr=0.1), dict(lr=0.2, weight_decay=1e-2), dict(weight_decay=1e-3)),
    ("adaiw", dict(lr=0.3, betas=(0.2, 0.95), weight_decay=5e-3), dict(lr=0.1), {}),
    ("adai", dict(lr=0.1, decoupled=True), dict(lr=0.2, weight_decay=1e-2), {}),
]


def _id(case):
    name, hp, g0, g1 = case
    return "-".join([name] + [f"{k}={v}" for k, v in {**hp, **{"g0" + k: v for k, v in g0.items()},
                                                       **{"g1" + k: v for k, v in g1.items()}}.items()])


@pytest.mark.parametrize("problem", ["net", "random"])
@pytest.mark.parametrize("with_missing_grads", [False, True])
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_adai_equals_reference(case, with_missing_grads, problem):
    name, hp, g0, g1 = case
    decoupled = hp.get("decoupled", name == "adaiw")
    betas, eps = hp.get("betas", (0.1, 0.99)), hp.get("eps", 1e-3)
    g1 = {"weight_decay": hp.get("weight_decay", 0.0), **g1}
    g0 = {"weight_decay": hp.get("weight_decay", 0.0), **g0}
    reference = _reference(g0, g1, betas, eps, decoupled, hp["lr"])
    actual = lambda nd: sandbox.create(name, _groups(nd, g0, g1), **hp)
    if problem == "net":
        drop = (lambda s: {"fc_out.bias", "conv_gn.weight"} if s % 3 == 1 else
                ({"bn1d.weight"} if s % 5 == 0 else set())) if with_missing_grads else None
        run_net_vs_reference(actual, reference, KEYS, steps=STEPS, drop=drop)
    else:
        drop = (lambda s: {1, 6} if s % 3 == 1 else ({4} if s % 5 == 0 else set())) \
            if with_missing_grads else None
        run_random_vs_reference(actual, reference, KEYS, steps=STEPS, drop=drop)


def _po_vbar_at_least(bound):
    """on_step hook: v̄ from pytorch_optimizer's own state (exp_avg_sq / (1 − β2^group_step))."""
    seen = []

    def check(step, _actual, po):
        total, count = 0.0, 0
        for group in po.param_groups:
            bc2 = 1.0 - group["betas"][1] ** group["step"]
            for p in group["params"]:
                v = po.state[p]["exp_avg_sq"]
                total += (v / bc2).sum().item()
                count += v.numel()
        seen.append(total / count)
        assert seen[-1] >= bound, (f"step {step + 1}: v̄ = {seen[-1]:.3e} < {bound}: "
                                   f"pytorch_optimizer's clamp is active, not the equivalent regime")
    return check


@pytest.mark.parametrize("problem", ["net", "random"])
@pytest.mark.parametrize("name,decoupled,g0,g1", [
    ("adai", False, dict(lr=0.2), dict(lr=0.1)),
    ("adai", False, dict(lr=0.2, weight_decay=1e-3), dict(lr=0.1, weight_decay=5e-4)),
    ("adaiw", True, dict(lr=0.2, weight_decay=1e-2), dict(lr=0.1, weight_decay=1e-3)),
])
def test_adai_equals_pytorch_optimizer_in_equivalent_regime(name, decoupled, g0, g1, problem):
    actual = lambda nd: sandbox.create(name, _groups(nd, g0, g1), lr=0.1)
    expected = lambda nd: PoAdai(_groups(nd, g0, g1), lr=0.1, betas=(0.1, 0.99), eps=1e-3,
                                 weight_decouple=decoupled, foreach=False)
    run = run_net_pair if problem == "net" else run_random_pair
    # no `step` key: the package keeps its counter per group (equal here, but elsewhere)
    run(actual, expected, ["exp_avg", "exp_avg_sq", "beta1_prod"], steps=STEPS,
        on_step=_po_vbar_at_least(1e-3))


def test_adaiw_is_adai_decoupled():
    run_random_pair(lambda nd: sandbox.create("adaiw", plain(nd), lr=0.1, weight_decay=1e-2),
                    lambda nd: sandbox.create("adai", plain(nd), lr=0.1, weight_decay=1e-2,
                                              decoupled=True), KEYS, steps=30)


def test_adai_all_zero_gradients_is_safe():
    """Documented divergence: v̄ = 0 gives NaN in the official code; the sandbox defines
    v̂/v̄ = 1 there, so the step is exactly zero and nothing becomes NaN."""
    ps = [torch.randn(4, 3, dtype=torch.float64).requires_grad_(True),
          torch.randn(5, dtype=torch.float64).requires_grad_(True)]
    before = [p.detach().clone() for p in ps]
    opt = sandbox.create("adai", ps, lr=0.1)
    for p in ps:
        p.grad = torch.zeros_like(p)
    opt.step()
    for p, b in zip(ps, before):
        assert torch.equal(p.detach(), b)
        for k, v in opt.state[p].items():
            assert torch.isfinite(torch.as_tensor(v)).all(), k

"""adamc / sgdc equal the corrected weight decay of Defazio 2025 (arXiv 2506.02285), written here
from the paper, under learning-rate schedules; at a constant lr they equal torch's AdamW / SGD.

AdamC: θ_t = θ_{t−1}(1 − c_t·λ) − γ_t·m̂_t/(√v̂_t + ε), c_t = γ_t²/γ_max on normalised tensors and
γ_t elsewhere. SGDC: torch's SGD whose L2 coefficient on normalised tensors is λ·γ_t/γ_max.
Normalised tensors come from the architecture (sandbox.probes.normalised_groups) on the net, and
from the random problem's construction (its channel_*/layer_* tensors get tangential gradients)
there. float64, 60 steps, parameters and state compared after every step, relative error ≤ 1e-10.

γ_max: ``lr_max`` given (the paper's peak), or None: the largest of the group's initial_lr (torch
schedulers) and the lrs seen so far (the documented choice), checked against a reference that
uses that running peak, which differs from the paper's global peak only during a warm-up.
"""
import math

import pytest
import torch

import nets
import sandbox
from compare import run_net_vs_reference, run_random_pair, run_random_vs_reference
from sandbox.probes.normalised_groups import normalised_flags, normalised_param_groups

STEPS = 60
PEAK = 2e-3


def warmup_cosine(t, peak=PEAK, warm=10, total=STEPS):
    if t < warm:
        return peak * (t + 1) / warm
    return 0.5 * peak * (1 + math.cos(math.pi * (t - warm) / (total - warm)))


def cosine(t, peak=PEAK, total=STEPS):
    return 0.5 * peak * (1 + math.cos(math.pi * t / total))


def adamc_step(lrs, gmax, normalised, betas=(0.9, 0.999), eps=1e-8, wd=0.1):
    """``lrs(t)``: γ_t; ``gmax(t)``: the γ_max used at step t; ``normalised(name)``."""
    b1, b2 = betas
    count = [0]

    def step(names, params, grads, states):
        t = count[0]
        count[0] += 1
        lr = lrs(t)
        for name, theta, g, st in zip(names, params, grads, states):
            if g is None:
                continue
            if not st:
                st.update(step=0, exp_avg=torch.zeros_like(theta), exp_avg_sq=torch.zeros_like(theta))
            st["step"] += 1
            k = st["step"]
            st["exp_avg"] = b1 * st["exp_avg"] + (1 - b1) * g
            st["exp_avg_sq"] = b2 * st["exp_avg_sq"] + (1 - b2) * g * g
            m_hat, v_hat = st["exp_avg"] / (1 - b1 ** k), st["exp_avg_sq"] / (1 - b2 ** k)
            c = lr ** 2 / gmax(t) if normalised(name) else lr
            theta.copy_(theta * (1 - c * wd) - lr * m_hat / (v_hat.sqrt() + eps))
    return step


def sgdc_step(lrs, gmax, normalised, momentum=0.9, wd=1e-3):
    count = [0]

    def step(names, params, grads, states):
        t = count[0]
        count[0] += 1
        lr = lrs(t)
        for name, theta, g, st in zip(names, params, grads, states):
            if g is None:
                continue
            lam = wd * lr / gmax(t) if normalised(name) else wd
            d = g + lam * theta
            st["momentum_buffer"] = d.clone() if "momentum_buffer" not in st \
                else momentum * st["momentum_buffer"] + d
            theta.sub_(lr * st["momentum_buffer"])
    return step


def _random_normalised(name):  # the random problem's tangential-gradient tensors
    return name.startswith(("channel", "layer"))


def _run(rule, problem, reference, hp, lrs, keys, scheduler=None):
    opts = []

    def actual(nd):
        if problem == "net":
            net_params = dict(nd)
            flags = normalised_flags(nets.make_net(0))
            groups = [dict(params=[net_params[n] for n, f in flags.items() if f], normalized=True),
                      dict(params=[net_params[n] for n, f in flags.items() if not f], normalized=False)]
        else:
            groups = [dict(params=[p for n, p in nd if _random_normalised(n)], normalized=True),
                      dict(params=[p for n, p in nd if not _random_normalised(n)], normalized=False)]
        opt = sandbox.create(rule, groups, lr=lrs(0), **hp)
        opts.append((opt, scheduler(opt) if scheduler else None))
        return opt

    def advance(step, _):
        opt, sched = opts[0]
        if sched is not None:
            sched.step()
        else:
            for g in opt.param_groups:
                g["lr"] = lrs(step + 1)

    run = run_net_vs_reference if problem == "net" else run_random_vs_reference
    return run(actual, reference, keys, steps=STEPS, on_step=advance)


def _net_normalised():
    flags = normalised_flags(nets.make_net(0))
    return lambda name: flags[name]


def _norm_fn(problem):
    return _net_normalised() if problem == "net" else _random_normalised


@pytest.mark.parametrize("problem", ["net", "random"])
def test_adamc_with_the_papers_peak_under_warmup_cosine(problem):
    ref = adamc_step(warmup_cosine, lambda t: PEAK, _norm_fn(problem))
    assert _run("adamc", problem, ref, dict(weight_decay=0.1, lr_max=PEAK), warmup_cosine,
                ["step", "exp_avg", "exp_avg_sq"]) <= 1e-10


@pytest.mark.parametrize("problem", ["net", "random"])
def test_adamc_with_a_torch_scheduler_takes_initial_lr_as_peak(problem):
    ref = adamc_step(cosine, lambda t: PEAK, _norm_fn(problem))
    sched = lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=STEPS)
    assert _run("adamc", problem, ref, dict(weight_decay=0.1), cosine,
                ["step", "exp_avg", "exp_avg_sq"], scheduler=sched) <= 1e-10


def test_adamc_without_lr_max_uses_the_running_peak_during_a_manual_warmup():
    running = lambda t: max(warmup_cosine(s) for s in range(t + 1))
    ref = adamc_step(warmup_cosine, running, _random_normalised)
    _run("adamc", "random", ref, dict(weight_decay=0.1), warmup_cosine, ["step", "exp_avg", "exp_avg_sq"])
    # ... which is not the paper's γ_max during the warm-up (documented choice)
    paper = adamc_step(warmup_cosine, lambda t: PEAK, _random_normalised)
    with pytest.raises(AssertionError, match="worst relative error"):
        _run("adamc", "random", paper, dict(weight_decay=0.1), warmup_cosine, ["exp_avg"])


@pytest.mark.parametrize("problem", ["net", "random"])
def test_sgdc_under_warmup_cosine(problem):
    lrs = lambda t: 50 * warmup_cosine(t)  # peak 0.1
    ref = sgdc_step(lrs, lambda t: 50 * PEAK, _norm_fn(problem))
    assert _run("sgdc", problem, ref, dict(weight_decay=1e-3, momentum=0.9, lr_max=50 * PEAK), lrs,
                ["momentum_buffer"]) <= 1e-10


def test_constant_lr_is_adamw_and_torch_sgd_exactly():
    def groups(nd, normalized):
        return [dict(params=[p for _, p in nd], normalized=normalized)]
    for normalized in (True, False):
        run_random_pair(lambda nd: sandbox.create("adamc", groups(nd, normalized), lr=1e-3, weight_decay=0.1),
                        lambda nd: torch.optim.AdamW([p for _, p in nd], lr=1e-3, weight_decay=0.1,
                                                     foreach=False),
                        ["exp_avg", "exp_avg_sq"], steps=STEPS)
        run_random_pair(lambda nd: sandbox.create("sgdc", groups(nd, normalized), lr=0.05, momentum=0.9,
                                                  weight_decay=1e-3),
                        lambda nd: torch.optim.SGD([p for _, p in nd], lr=0.05, momentum=0.9,
                                                   weight_decay=1e-3, foreach=False),
                        ["momentum_buffer"], steps=STEPS)


def test_the_group_helper_reads_the_architecture_not_names():
    net = nets.make_net(0)
    groups = normalised_param_groups(net, weight_decay=0.1, other=dict(weight_decay=0.0))
    by_id = {id(p): n for n, p in net.named_parameters()}
    norm = sorted(by_id[id(p)] for p in groups[0]["params"])
    assert norm == ["conv_bn.weight", "conv_gn.weight", "fc_bn.weight"]
    assert groups[0]["normalized"] and not groups[1]["normalized"] and groups[1]["weight_decay"] == 0.0

    class Misleading(torch.nn.Module):  # names that say the opposite of the graph
        def __init__(self):
            super().__init__()
            self.norm_weight = torch.nn.Linear(16, 3)           # feeds the output
            self.bias = torch.nn.Conv2d(2, 4, 3, bias=False)    # feeds a BatchNorm
            self.classifier = torch.nn.BatchNorm2d(4)

        def forward(self, x):
            h = torch.relu(self.classifier(self.bias(x)))
            return self.norm_weight(torch.nn.functional.adaptive_avg_pool2d(h, 2).flatten(1))

    flags = normalised_flags(Misleading())
    assert flags["bias.weight"] and not flags["norm_weight.weight"]


def test_no_normalised_information_is_refused_at_construction():
    w = torch.zeros(3, 3, requires_grad=True)
    for rule in ("adamc", "sgdc"):
        with pytest.raises(ValueError, match=r"'normalized' is required.*normalised_param_groups"):
            sandbox.create(rule, [w])
        with pytest.raises(ValueError, match=r"'normalized' is required"):
            sandbox.create(rule, [{"params": [w], "normalized": True},
                                  {"params": [torch.zeros(2, requires_grad=True)]}])

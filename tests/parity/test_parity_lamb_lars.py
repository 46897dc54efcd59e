"""lamb and lars equal the papers' algorithms (reference steps written here), and
``pytorch_optimizer``'s Lamb / LARS where those coincide with the papers.

float64, 60 steps, compared after every step: parameters and state, relative error ≤ 1e-10.

LAMB (You et al., ICLR 2020, Algorithm 2, φ = identity): ``r = m̂/(√v̂ + ε) + λθ``,
``θ ← θ − lr·‖θ‖/‖r‖·r``. ``pytorch_optimizer.Lamb`` differs by (0) its step size lr/(1 − β1^t),
applied AFTER the trust ratio (unless ``adam_debias=True``): the relative update is lr/(1 − β1^t),
10·lr at the first step, (1) no bias correction inside r, (2) decoupled decay by default, (3)
φ(z) = min(z, 10), (4) ε added to ‖r‖ in the ratio. The paper's
reference below takes switches for each of them, so that the divergences are shown to be exactly
these: with the package's switches it equals the package; with the paper's it equals lamb.

LARS (You, Gitman & Ginsburg 2017, Algorithm 1): ``v ← μv + lr·η‖θ‖/(‖g‖ + λ‖θ‖)·(g + λθ)``,
``θ ← θ − v``. The sandbox stores its buffer as −v (the step it adds to θ). ``pytorch_optimizer``
keeps lr outside its buffer (= v/lr) and never adapts vectors: equal at a constant lr with
``layer_adaptation=False, weight_decay=0`` for the vectors' group; different when lr changes.
"""
import pytest
import torch
from pytorch_optimizer import LARS as PoLARS
from pytorch_optimizer import Lamb as PoLamb

import nets
import sandbox
from compare import compare, plain, run_net_vs_reference, run_random_pair, run_random_vs_reference

STEPS = 60


# --- references ------------------------------------------------------------------------------
def lamb_step(lr, betas=(0.9, 0.999), eps=1e-6, wd=0.0, bias_correction=True, decoupled=False,
              clip=None, eps_in_ratio=False, step_over_bc1=False, adapt=lambda name: True):
    """LAMB, one line per equation; the switches reproduce pytorch_optimizer's variants."""
    b1, b2 = betas

    def step(names, params, grads, states):
        for name, theta, g, st in zip(names, params, grads, states):
            if g is None:
                continue
            if not st:
                st.update(step=0, exp_avg=torch.zeros_like(theta), exp_avg_sq=torch.zeros_like(theta))
            st["step"] += 1
            t = st["step"]
            st["exp_avg"] = b1 * st["exp_avg"] + (1 - b1) * g
            st["exp_avg_sq"] = b2 * st["exp_avg_sq"] + (1 - b2) * g * g
            m, v = st["exp_avg"], st["exp_avg_sq"]
            if bias_correction:
                m, v = m / (1 - b1 ** t), v / (1 - b2 ** t)
            r = m / (v.sqrt() + eps)
            if decoupled:
                theta.mul_(1 - lr * wd)
            else:
                r = r + wd * theta
            w_norm, r_norm = theta.norm(), r.norm()
            phi = w_norm if clip is None else w_norm.clamp(max=clip)
            ratio = phi / (r_norm + (eps if eps_in_ratio else 0.0))
            if w_norm == 0 or r_norm == 0 or not adapt(name):
                ratio = 1.0
            size = lr / (1 - b1 ** t) if step_over_bc1 else lr
            theta.sub_(size * ratio * r)
    return step


def lars_step(lrs, momentum=0.9, wd=5e-4, eta=1e-3, adapt=lambda name: True):
    """LARS, one line per equation; ``lrs(step)`` is the global lr γ_t; state 'momentum_buffer'
    holds −v (the sandbox's sign)."""
    count = [0]

    def step(names, params, grads, states):
        lr = lrs(count[0])
        count[0] += 1
        for name, theta, g, st in zip(names, params, grads, states):
            if g is None:
                continue
            v = -st.get("momentum_buffer", torch.zeros_like(theta))
            if adapt(name):
                w_norm, g_norm = theta.norm(), g.norm()
                local = eta * w_norm / (g_norm + wd * w_norm)
                d = g + wd * theta
            else:
                local, d = 1.0, g + wd * theta
            v = momentum * v + lr * local * d
            theta.sub_(v)
            st["momentum_buffer"] = -v
    return step


def _vector_groups(named, vec_hp):
    return [dict(params=[p for _, p in named if p.ndim > 1]),
            dict(params=[p for _, p in named if p.ndim <= 1], **vec_hp)]


# --- LAMB ----------------------------------------------------------------------------------
LAMB_CASES = [dict(lr=1e-3), dict(lr=1e-3, weight_decay=0.01),
              dict(lr=5e-3, betas=(0.8, 0.99), eps=1e-4, weight_decay=0.1)]


@pytest.mark.parametrize("problem", ["net", "random"])
@pytest.mark.parametrize("hp", LAMB_CASES, ids=lambda h: "-".join(f"{k}={v}" for k, v in h.items()))
def test_lamb_equals_the_paper(hp, problem):
    h = {"betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.0, **hp}
    reference = lamb_step(h["lr"], h["betas"], h["eps"], h["weight_decay"])
    actual = lambda nd: sandbox.create("lamb", plain(nd), **hp)
    run = run_net_vs_reference if problem == "net" else run_random_vs_reference
    assert run(actual, reference, ["step", "exp_avg", "exp_avg_sq"], steps=STEPS) <= 1e-10


def test_lamb_layer_adaptation_off_for_a_group_is_adam_plus_l2():
    adapt = lambda name: not name.startswith("bias")
    reference = lamb_step(2e-3, wd=0.01, adapt=adapt)
    actual = lambda nd: sandbox.create("lamb", [
        dict(params=[p for n, p in nd if adapt(n)]),
        dict(params=[p for n, p in nd if not adapt(n)], layer_adaptation=False)], lr=2e-3, weight_decay=0.01)
    run_random_vs_reference(actual, reference, ["exp_avg", "exp_avg_sq"], steps=STEPS)


def _norms_below(bound):
    def check(step, _a, po):
        for group in po.param_groups:
            for p in group["params"]:
                assert p.norm() <= bound, f"step {step + 1}: ‖θ‖ = {p.norm():.3f} > {bound}: clip active"
    return check


@pytest.mark.parametrize("foreach", [False, True])
def test_lamb_equals_pytorch_optimizer_where_they_coincide(foreach):
    """eps = 0, λ = 0 (no bias-correction, decay or ε difference), adam_debias=True (no lr/(1−β1^t)
    on the step) and every ‖θ‖ ≤ 10 (no clip)."""
    problem = nets.RandomProblem(scale=0.5)
    actual = lambda nd: sandbox.create("lamb", plain(nd), lr=5e-3, eps=0.0)
    expected = lambda nd: PoLamb(plain(nd), lr=5e-3, eps=0.0, adam_debias=True, foreach=foreach)
    assert run_random_pair(actual, expected, ["exp_avg", "exp_avg_sq"], steps=STEPS, problem=problem,
                           on_step=_norms_below(10.0)) <= 1e-10


PO_VARIANTS = [  # pytorch_optimizer options -> the reference's switches that reproduce them
    (dict(eps=0.0), dict(bias_correction=False, step_over_bc1=True)),  # its defaults, ε = 0
    (dict(weight_decay=0.05, weight_decouple=False, eps=0.0, adam_debias=True),
     dict(bias_correction=False, wd=0.05)),
    (dict(weight_decay=0.05, eps=0.0, adam_debias=True), dict(bias_correction=False, decoupled=True, wd=0.05)),
    (dict(eps=1e-3, adam_debias=True), dict(bias_correction=False, eps=1e-3, eps_in_ratio=True)),
    (dict(eps=0.0, adam_debias=True), dict(bias_correction=False, clip=10.0)),
]


@pytest.mark.parametrize("po_kw,switches", PO_VARIANTS,
                         ids=["step-over-bc1", "coupled-no-bc", "decoupled", "eps", "clip"])
def test_lamb_divergences_of_pytorch_optimizer_are_exactly_the_documented_ones(po_kw, switches):
    scale = 3.0 if "clip" in switches else 0.5  # ‖θ‖ > 10 makes the clip act
    problem = nets.RandomProblem(scale=scale)
    lr = 5e-3
    expected = lambda nd: PoLamb(plain(nd), lr=lr, foreach=False, **po_kw)
    sw = {"eps": 0.0, **switches}
    run_random_vs_reference(expected, lamb_step(lr, **sw), ["exp_avg", "exp_avg_sq"], steps=20,
                            problem=problem)
    # ... and lamb itself (the paper's switches) differs from the package there
    names, pa, pb = problem.names, problem.clone_params(), problem.clone_params()
    pa = [p.requires_grad_(True) for p in pa]
    pb = [p.requires_grad_(True) for p in pb]
    oa = sandbox.create("lamb", pa, lr=lr, eps=po_kw.get("eps", 1e-6),
                        weight_decay=po_kw.get("weight_decay", 0.0))
    ob = expected(list(zip(names, pb)))
    for s in range(20):
        problem.set_grads(pa, s)
        problem.set_grads(pb, s)
        oa.step()
        ob.step()
    assert max((a - b).abs().max() / b.abs().max() for a, b in zip(pa, pb)) > 1e-8


# --- LARS ------------------------------------------------------------------------------------
@pytest.mark.parametrize("problem", ["net", "random"])
@pytest.mark.parametrize("hp", [dict(lr=0.5), dict(lr=0.5, momentum=0.5, weight_decay=1e-2,
                                                   trust_coefficient=0.02)],
                         ids=["defaults", "mu0.5-wd-eta"])
def test_lars_equals_the_paper(hp, problem):
    h = {"momentum": 0.9, "weight_decay": 5e-4, "trust_coefficient": 1e-3, **hp}
    reference = lars_step(lambda t: h["lr"], h["momentum"], h["weight_decay"], h["trust_coefficient"])
    actual = lambda nd: sandbox.create("lars", plain(nd), **hp)
    run = run_net_vs_reference if problem == "net" else run_random_vs_reference
    assert run(actual, reference, ["momentum_buffer"], steps=STEPS) <= 1e-10


def test_lars_under_a_schedule_keeps_lr_in_the_buffer_like_the_paper():
    lrs = lambda t: 0.5 * (0.9 ** t)
    reference = lars_step(lrs, 0.9, 1e-3, 0.01)
    opt_box = []

    def actual(nd):
        opt_box.append(sandbox.create("lars", plain(nd), lr=lrs(0), weight_decay=1e-3,
                                      trust_coefficient=0.01))
        return opt_box[0]

    def set_lr(step, _):
        opt_box[0].param_groups[0]["lr"] = lrs(step + 1)

    run_random_vs_reference(actual, reference, ["momentum_buffer"], steps=30, on_step=set_lr)


def _buffers_are_minus_lr_times(lr):
    def check(step, oa, ob):
        for ga, gb in zip(oa.param_groups, ob.param_groups):
            for pa, pb in zip(ga["params"], gb["params"]):
                a, b = oa.state[pa]["momentum_buffer"], ob.state[pb]["momentum_buffer"]
                compare([a], [{}], [-lr * b], [{}], [], rtol=1e-10, context=f"buffer, step {step + 1}")
    return check


@pytest.mark.parametrize("foreach", [False, True])
def test_lars_equals_pytorch_optimizer_at_a_constant_lr(foreach):
    lr, kw = 0.3, dict(momentum=0.9, weight_decay=1e-3, trust_coefficient=0.01)
    actual = lambda nd: sandbox.create("lars", _vector_groups(nd, dict(layer_adaptation=False,
                                                                       weight_decay=0.0)), lr=lr, **kw)
    expected = lambda nd: PoLARS(plain(nd), lr=lr, foreach=foreach, **kw)
    assert run_random_pair(actual, expected, [], steps=STEPS, on_step=_buffers_are_minus_lr_times(lr)) <= 1e-10


def test_lars_differs_from_pytorch_optimizer_when_lr_changes():
    problem = nets.RandomProblem()
    kw = dict(momentum=0.9, weight_decay=1e-3, trust_coefficient=0.01)
    pa = [p.requires_grad_(True) for p in problem.clone_params()]
    pb = [p.requires_grad_(True) for p in problem.clone_params()]
    oa = sandbox.create("lars", _vector_groups(list(zip(problem.names, pa)),
                                               dict(layer_adaptation=False, weight_decay=0.0)), lr=0.3, **kw)
    ob = PoLARS(pb, lr=0.3, foreach=False, **kw)
    for s in range(6):
        problem.set_grads(pa, s)
        problem.set_grads(pb, s)
        oa.step()
        ob.step()
        for g in oa.param_groups + ob.param_groups:
            g["lr"] = 0.3 * 0.5 ** (s + 1)
    assert max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(pa, pb)) > 1e-6

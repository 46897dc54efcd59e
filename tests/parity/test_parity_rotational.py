"""rvadamw / rvsgd / rvlion equal the official rotational optimizers (Kosson, Messmer & Jaggi,
ICML 2024; epfml/rotational-optimizers shared/optimizers/rotational_{adamw,sgd,lion}.py), written
here as reference steps from the paper's Algorithm and that code.

float64, 60 steps, compared after every step: parameters and state (``exp_avg``, ``exp_avg_sq``,
``momentum_buffer``, ``step``, ``weight_norm``, ``update_norm2`` — the per-row quantities
broadcast to the parameter's shape as the sandbox stores them), relative error ≤ 1e-10, on the
small BN/GN net (every matrix and conv weight rotational, as the official default rule decides)
and on the random tensors, with per-neuron and per-tensor rotation, zero_mean on and off, other
undf, momentum/Nesterov, and a group forced non-rotational.

Also: the rotational property itself (each neuron keeps its norm, rms angular update = ρ from
step 1 is theory's, in tests/test_theory_sign_trust.py), and the documented divergences.
"""
import math

import pytest
import torch

import sandbox
from compare import plain, run_net_vs_reference, run_random_vs_reference

STEPS = 60
KEYS = ["exp_avg", "exp_avg_sq", "momentum_buffer", "step", "weight_norm", "update_norm2"]


def _rows(x, per_neuron):
    return x.reshape(x.shape[0], -1) if per_neuron else x.reshape(1, -1)


def _centre(x, per_neuron):
    r = _rows(x, per_neuron)
    return (r - r.mean(dim=1, keepdim=True)).reshape(x.shape)


def _row_norm(x, per_neuron):  # (rows, 1)
    return _rows(x, per_neuron).norm(dim=1, keepdim=True)


def _official_default(theta, wd, rotational, min_dim=2):
    if rotational is not None:
        return rotational
    return theta.squeeze().dim() >= min_dim and wd > 0


def _rotational_step(theta, d, st, t, rho, eps, per_neuron, zero_mean, undf):
    """The official rotational branch (shared by the three optimizers)."""
    if "weight_norm" not in st:
        base = _centre(theta, per_neuron) if zero_mean else theta
        st["n"] = _row_norm(base, per_neuron)
    n = st["n"]
    P, D = _rows(theta, per_neuron), _rows(d, per_neuron)
    D = D - P * ((D * P).sum(dim=1, keepdim=True) / n ** 2)         # radial part removed
    U = (1 - undf) * D.norm(dim=1, keepdim=True) ** 2 + undf * st.get("U", 0.0)
    st["U"] = U
    u_bar = torch.sqrt(U / (1 - undf ** t))
    new = P - rho * (D / (eps + u_bar)) * n
    if zero_mean:
        new = new - new.mean(dim=1, keepdim=True)
    new = new * n / new.norm(dim=1, keepdim=True)
    theta.copy_(new.reshape(theta.shape))
    # the sandbox keeps the per-row statistics broadcast to the parameter's shape
    st["weight_norm"] = n.expand(P.shape).reshape(theta.shape)
    st["update_norm2"] = U.expand(P.shape).reshape(theta.shape)


def rvadamw_step(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, wd=1e-2, per_neuron=True, zero_mean=True,
                 undf=0.99, rotational=lambda name: None):
    b1, b2 = betas

    def step(names, params, grads, states):
        for name, theta, g, st in zip(names, params, grads, states):
            if g is None:
                continue
            if "step" not in st:
                st.update(step=0, exp_avg=torch.zeros_like(theta), exp_avg_sq=torch.zeros_like(theta))
            st["step"] += 1
            t = st["step"]
            st["exp_avg"] = b1 * st["exp_avg"] + (1 - b1) * g
            st["exp_avg_sq"] = b2 * st["exp_avg_sq"] + (1 - b2) * g * g
            denom = st["exp_avg_sq"].sqrt() / math.sqrt(1 - b2 ** t) + eps
            if _official_default(theta, wd, rotational(name)):
                rho = (2 * lr * wd * (1 - b1) / (1 + b1)) ** 0.5
                _rotational_step(theta, st["exp_avg"] / denom, st, t, rho, eps, per_neuron,
                                 zero_mean, undf)
            else:
                theta.mul_(1 - lr * wd)
                theta.sub_(lr / (1 - b1 ** t) * st["exp_avg"] / denom)
    return step


def rvsgd_step(lr, wd, momentum=0.0, nesterov=False, eps=1e-8, per_neuron=True, zero_mean=True,
               undf=0.99, rotational=lambda name: None):
    def step(names, params, grads, states):
        for name, theta, g, st in zip(names, params, grads, states):
            if g is None:
                continue
            rot = _official_default(theta, wd, rotational(name))
            d = g if rot else g + wd * theta
            if momentum != 0:
                if "momentum_buffer" not in st:
                    st["momentum_buffer"] = d.clone()
                else:
                    st["momentum_buffer"] = momentum * st["momentum_buffer"] + d
                d = d + momentum * st["momentum_buffer"] if nesterov else st["momentum_buffer"]
            st["step"] = st.get("step", 0) + 1  # (official: rotational steps only; equal here)
            if rot:
                rho = (2 * lr * wd / (1 + momentum)) ** 0.5
                _rotational_step(theta, d, st, st["step"], rho, eps, per_neuron, zero_mean, undf)
            else:
                theta.sub_(lr * d)
    return step


def rvlion_step(lr=1e-4, betas=(0.9, 0.99), wd=0.0, eps=1e-8, per_neuron=True, zero_mean=True,
                undf=0.99, rotational=lambda name: None):
    b1, b2 = betas

    def step(names, params, grads, states):
        for name, theta, g, st in zip(names, params, grads, states):
            if g is None:
                continue
            m = st.setdefault("exp_avg", torch.zeros_like(theta))
            st["step"] = st.get("step", 0) + 1
            d = torch.sign(b1 * m + (1 - b1) * g)
            if _official_default(theta, wd, rotational(name)):
                rho = math.sqrt(math.pi / 2) * math.sqrt(2 * lr * wd) * \
                    math.sqrt((1 - b1) ** 2 + b1 ** 2 * (1 - b2) / (1 + b2))
                _rotational_step(theta, d, st, st["step"], rho, eps, per_neuron, zero_mean, undf)
            else:
                theta.mul_(1 - lr * wd)
                theta.sub_(lr * d)
            st["exp_avg"] = b2 * m + (1 - b2) * g
    return step


def _ref_kw(hp):
    out = {}
    for k, v in hp.items():
        out[{"weight_decay": "wd", "update_norm_decay_factor": "undf"}.get(k, k)] = v
    return out


CASES = [
    ("rvadamw", {}),
    ("rvadamw", dict(lr=3e-3, weight_decay=0.1, betas=(0.8, 0.99))),
    ("rvadamw", dict(per_neuron=False, zero_mean=False, update_norm_decay_factor=0.9)),
    ("rvsgd", dict(lr=0.1, weight_decay=5e-4)),
    ("rvsgd", dict(lr=0.05, weight_decay=1e-3, momentum=0.9)),
    ("rvsgd", dict(lr=0.05, weight_decay=1e-3, momentum=0.9, nesterov=True, zero_mean=False)),
    ("rvlion", dict(weight_decay=1.0)),
    ("rvlion", dict(lr=3e-4, weight_decay=0.5, betas=(0.95, 0.98), per_neuron=False)),
]
REFS = {"rvadamw": rvadamw_step, "rvsgd": rvsgd_step, "rvlion": rvlion_step}


def _id(case):
    name, hp = case
    return name + "-" + ("-".join(f"{k}={v}" for k, v in hp.items()) or "defaults")


@pytest.mark.parametrize("problem", ["net", "random"])
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_rotational_equals_official(case, problem):
    name, hp = case
    reference = REFS[name](**_ref_kw(hp))
    actual = lambda nd: sandbox.create(name, plain(nd), **hp)
    run = run_net_vs_reference if problem == "net" else run_random_vs_reference
    assert run(actual, reference, KEYS, steps=STEPS) <= 1e-10


@pytest.mark.parametrize("name,hp", [("rvadamw", {}), ("rvsgd", dict(lr=0.1, weight_decay=1e-3))])
def test_a_group_forced_off_runs_the_base_rule(name, hp):
    off = lambda n: False if n.startswith("plain") else None
    reference = REFS[name](**_ref_kw(hp), rotational=off)
    actual = lambda nd: sandbox.create(name, [
        dict(params=[p for n, p in nd if off(n) is None]),
        dict(params=[p for n, p in nd if off(n) is False], rotational=False)], **hp)
    run_random_vs_reference(actual, reference, KEYS, steps=30)


def test_neurons_keep_their_norm_and_stay_centred():
    torch.manual_seed(0)
    w = torch.randn(8, 5, 3, dtype=torch.float64, requires_grad=True)
    n0 = _row_norm(_centre(w.detach(), True), True)
    opt = sandbox.create("rvadamw", [w], lr=1e-2, weight_decay=0.1)
    for _ in range(20):
        w.grad = torch.randn_like(w)
        opt.step()
        assert opt.last_info[w]["rotational"] is True
    torch.testing.assert_close(_row_norm(w.detach(), True), n0, rtol=1e-13, atol=0)
    assert _rows(w.detach(), True).mean(dim=1).abs().max() < 1e-15


def test_divergence_zero_row_stays_put_where_official_gives_nan():
    w = torch.randn(4, 6, dtype=torch.float64)
    w[1] = 0.0
    w[2] = 0.5  # constant: its centred norm is 0
    w.requires_grad_(True)
    opt = sandbox.create("rvsgd", [w], lr=0.1, weight_decay=1e-3, momentum=0.9)
    before = w.detach().clone()
    for _ in range(3):
        w.grad = torch.randn_like(w)
        opt.step()
    assert torch.isfinite(w).all()
    assert torch.equal(w[1], before[1]) and torch.equal(w[2], before[2])
    assert not torch.equal(w[0], before[0])


def test_divergence_forcing_an_impossible_rotation_runs_the_base_rule():
    """The official code raises ValueError for rotational=True on a vector (per neuron) or with
    λ = 0; a sandbox step cannot refuse part-way, so that tensor runs the base rule (AdamW)."""
    torch.manual_seed(2)
    v0, m0 = torch.randn(7, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    a, b = v0.clone().requires_grad_(True), v0.clone().requires_grad_(True)
    oa = sandbox.create("rvadamw", [a], rotational=True)
    ob = sandbox.create("adamw", [b], weight_decay=1e-2)
    c = m0.clone().requires_grad_(True)
    oc = sandbox.create("rvadamw", [c], rotational=True, weight_decay=0.0)
    for _ in range(3):
        g = torch.randn_like(v0)
        a.grad, b.grad, c.grad = g.clone(), g.clone(), torch.randn_like(m0)
        oa.step()
        ob.step()
        oc.step()
    assert oa.last_info[a]["rotational"] is False and oc.last_info[c]["rotational"] is False
    torch.testing.assert_close(a, b, rtol=1e-13, atol=0)


def test_rvlion_judges_every_tensor_on_its_own():
    """Official RotationalLion takes the rotational verdict of a group's LAST parameter for the
    whole group: a (conv, vector) group would rotate nothing. Here the conv rotates, the vector
    runs Lion (documented divergence)."""
    torch.manual_seed(3)
    conv, vec = torch.randn(4, 2, 3, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    ps = [conv.clone().requires_grad_(True), vec.clone().requires_grad_(True)]
    opt = sandbox.create("rvlion", ps, lr=1e-3, weight_decay=1.0)
    for p in ps:
        p.grad = torch.randn_like(p)
    opt.step()
    assert opt.last_info[ps[0]]["rotational"] is True and opt.last_info[ps[1]]["rotational"] is False

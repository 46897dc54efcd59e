"""theory.sign_trust (Lion, LAMB, LARS) and theory.rotational against direct numpy simulation of
the rules on the noise-driven toy (g = P_perp(xi)/r) and, cheaply, against the sandbox's rules.

Tolerances were fixed before the runs: equilibria (time averages over thousands of steps and 256
replicas) 3%; Lion's no-decay curve (a per-step rms, noisier and with Delta/(1-b2) ~ 0.2) 5%;
LAMB's law-of-cosines identity 1e-9 (exact); the rotational variants' first step 1e-10 (exact),
their later steps 5% per step (rms over 256 neurons) against rho times the start-up factor.
"""
import math

import numpy as np
import pytest
import torch

import sandbox
from sandbox.toys import NoiseDrivenToy
from theory import rotational as rot
from theory import sign_trust as st
from theory.equilibrium import equilibrium_angular_step
from theory.homogeneity import RuleTraits

D, R = 64, 256


def _tang(x, w):
    wh = w / np.linalg.norm(w, axis=1, keepdims=True)
    return x - wh * (wh * x).sum(1, keepdims=True)


def _angle(w, wn):
    wh = w / np.linalg.norm(w, axis=-1, keepdims=True)
    par = (wh * wn).sum(-1)
    return np.arctan2(np.linalg.norm(wn - wh * par[..., None], axis=-1), par)


def _run(step, r0, T, d=D, replicas=R, seed=0):
    """Run ``step(w, g, t) -> w_new`` on the toy; rms r_t (after step t) and rms Delta_t."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((replicas, d))
    w *= r0 / np.linalg.norm(w, axis=1, keepdims=True)
    rs, ds = np.empty(T), np.empty(T)
    for t in range(T):
        g = _tang(rng.standard_normal(w.shape), w) / np.linalg.norm(w, axis=1, keepdims=True)
        wn = step(w, g, t)
        ds[t] = np.sqrt(np.mean(_angle(w, wn) ** 2))
        w = wn
        rs[t] = np.sqrt(np.mean((w ** 2).sum(1)))
    return rs, ds


def _lion(eta, lam, b1=0.9, b2=0.99):
    m = {}

    def step(w, g, t):
        mm = m.setdefault("m", np.zeros_like(w))
        u = np.sign(b1 * mm + (1 - b1) * g)
        m["m"] = b2 * mm + (1 - b2) * g
        return w * (1 - eta * lam) - eta * u
    return step


def _lamb(eta, lam, b1=0.9, b2=0.99):
    s = {}

    def step(w, g, t):
        m = s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        v = s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        r = (m / (1 - b1 ** (t + 1))) / np.sqrt(v / (1 - b2 ** (t + 1))) + lam * w
        return w - eta * np.linalg.norm(w, axis=1, keepdims=True) * r / np.linalg.norm(r, axis=1, keepdims=True)
    return step


# --- Lion ------------------------------------------------------------------------------------------
def test_lion_linearised_factor_is_kossons_rotation():
    for eta, lam, betas in [(1e-3, 0.1, (0.9, 0.99)), (3e-4, 1.0, (0.95, 0.98))]:
        assert st.lion_equilibrium(eta, lam, D, *betas, exact=False)[0] == pytest.approx(
            st.kosson_lion_rotation(eta, lam, *betas), rel=1e-12)
    exact, lin = st.lion_momentum_factor(), st.lion_momentum_factor(exact=False)
    assert 1.0 < exact / lin < 1.03  # the arcsine law's extra correlation: 1.5% at (0.9, 0.99)
    # Lion's traits are AdamW's, but its M is not: the equivalent-EMA record carries Lion's
    assert abs(exact - 19.0) > 20


def test_lion_equilibrium_matches_simulation():
    eta, lam = 1e-3, 0.1
    delta, r_star = st.lion_equilibrium(eta, lam, D)
    rs, ds = _run(_lion(eta, lam), r_star, 6000)
    assert rs[-3000:].mean() == pytest.approx(r_star, rel=0.03)
    assert ds[-3000:].mean() == pytest.approx(delta, rel=0.03)


def test_lion_without_decay_follows_the_norm_curve():
    eta, r0 = 1e-3, 3.0
    rs, ds = _run(_lion(eta, 0.0), r0, 4000, replicas=512, seed=1)
    t = np.arange(1000, 4000)
    pred = st.lion_angular_step_curve(t, r0, eta, D)
    np.testing.assert_allclose(ds[t], pred, rtol=0.05)


def test_lion_sandbox_rule_on_the_toy_sits_at_the_predicted_equilibrium():
    eta, lam = 1e-3, 0.1
    delta, r_star = st.lion_equilibrium(eta, lam, D)
    toy = NoiseDrivenToy(d=D, replicas=R, r0=r_star, seed=3)
    opt = sandbox.create("lion", toy.param_groups(), lr=eta, weight_decay=lam)
    ds, rs = [], []
    for _ in range(3000):
        w0 = toy.w.detach().clone().numpy()
        toy.fill_grad()
        opt.step()
        ds.append(np.sqrt(np.mean(_angle(w0, toy.w.detach().numpy()) ** 2)))
        rs.append(float(toy.w.norm(dim=1).pow(2).mean().sqrt()))
    assert np.mean(rs[-2000:]) == pytest.approx(r_star, rel=0.03)
    assert np.mean(ds[-2000:]) == pytest.approx(delta, rel=0.03)


# --- LAMB / LARS -------------------------------------------------------------------------------------
def test_lamb_angle_is_fixed_by_the_norm_ratio_exactly():
    toy = NoiseDrivenToy(d=D, replicas=32, r0=1.0, seed=4)
    eta = 0.02
    opt = sandbox.create("lamb", toy.param_groups(), lr=eta, weight_decay=0.05)
    for _ in range(50):
        w0 = toy.w.detach().clone().numpy()
        toy.fill_grad()
        opt.step()
        w1 = toy.w.detach().numpy()
        rho = np.linalg.norm(w1, axis=1) / np.linalg.norm(w0, axis=1)
        np.testing.assert_allclose(_angle(w0, w1), st.lamb_angle_from_norm_ratio(eta, rho), rtol=1e-9)


def test_lamb_without_decay_grows_geometrically_at_a_constant_angle():
    eta, r0 = 0.01, 1.0
    toy = NoiseDrivenToy(d=D, replicas=R, r0=r0, seed=5)
    opt = sandbox.create("lamb", toy.param_groups(), lr=eta, betas=(0.9, 0.99))
    rs, ds = [], []
    for _ in range(1000):
        w0 = toy.w.detach().clone().numpy()
        toy.fill_grad()
        opt.step()
        ds.append(np.sqrt(np.mean(_angle(w0, toy.w.detach().numpy()) ** 2)))
        rs.append(float(toy.w.norm(dim=1).pow(2).mean().sqrt()))
    t = np.arange(1, 1001)
    ok = t >= 30  # 3/(1-b1): the momentum's correlations build up first
    np.testing.assert_allclose(np.array(rs)[ok], st.lamb_norm_curve_no_decay(t, r0, eta)[ok], rtol=0.03)
    np.testing.assert_allclose(np.array(ds)[ok], st.lamb_angular_step_no_decay(eta), rtol=0.03)


def test_lamb_equilibrium_matches_simulation():
    eta, lam = 0.01, 0.01
    eq = st.lamb_equilibrium(eta, lam, D)
    rs, ds = _run(_lamb(eta, lam), eq.norm, 4000, seed=6)
    assert rs[-2000:].mean() == pytest.approx(eq.norm, rel=0.03)
    assert ds[-2000:].mean() == pytest.approx(eq.angular_step, rel=0.03)
    # the decay sets the norm, not the angle: Delta* ~ eta, far from AdamW's sqrt(2 eta lam M^-1)
    adamw = equilibrium_angular_step(eta, lam, RuleTraits(0, 0.9, "ema", decay="decoupled"))
    assert eq.angular_step > 3 * adamw


def test_lars_equilibrium_matches_simulation():
    lr, trust, lam, mu = 0.5, 0.02, 0.01, 0.9
    delta, r_star = st.lars_equilibrium(lr, trust, lam, mu, math.sqrt(D - 1))
    v = {}

    def step(w, g, t):
        r = np.linalg.norm(w, axis=1, keepdims=True)
        local = trust * r / (np.linalg.norm(g, axis=1, keepdims=True) + lam * r)
        v["v"] = mu * v.get("v", 0.0) + lr * local * (g + lam * w)
        return w - v["v"]
    rs, ds = _run(step, r_star, 5000, seed=7)
    assert rs[-2500:].mean() == pytest.approx(r_star, rel=0.03)
    assert ds[-2500:].mean() == pytest.approx(delta, rel=0.03)


# --- rotational variants ---------------------------------------------------------------------------------
@pytest.mark.parametrize("rule,kw", [("rvadamw", dict(lr=1e-3, weight_decay=0.1)),
                                     ("rvsgd", dict(lr=0.1, weight_decay=1e-3, momentum=0.9)),
                                     ("rvlion", dict(lr=1e-3, weight_decay=0.3))])
def test_rotational_variants_turn_every_neuron_by_rho_from_step_one(rule, kw):
    K, L = 256, 32
    gen = torch.Generator().manual_seed(8)
    w0 = torch.randn(K, L, generator=gen, dtype=torch.float64)
    w0 -= w0.mean(dim=1, keepdim=True)  # centred at initialisation (the official helper's job)
    w = w0.clone().requires_grad_(True)
    opt = sandbox.create(rule, [w], **kw)
    betas = opt.defaults["betas"] if "betas" in opt.defaults else (0.9, 0.999)
    rho = rot.rotational_target(rule, kw["lr"], kw["weight_decay"], betas, kw.get("momentum", 0.0))
    if rule != "rvlion":
        assert rho == pytest.approx(rot.base_equilibrium(rule, kw["lr"], kw["weight_decay"], betas,
                                                         kw.get("momentum", 0.0)), rel=1e-12)
    beta = {"rvadamw": betas[0], "rvsgd": kw.get("momentum", 0.0), "rvlion": 0.0}[rule]
    pred = rot.rotational_angular_step(rho, L, t=np.arange(1, 201), beta=beta)
    measured = []
    for t in range(200):
        before = w.detach().clone()
        w.grad = torch.randn(K, L, generator=gen, dtype=torch.float64)
        opt.step()
        delta = _angle(before.numpy(), w.detach().numpy())
        if t == 0:  # every neuron: u_bar_1 = ||d_1||, so only the centring factor remains
            assert np.all(delta <= rho * (1 + 1e-12)) and np.all(delta > 0.5 * rho)
        measured.append(np.sqrt(np.mean(delta ** 2)))
    np.testing.assert_allclose(measured, pred, rtol=0.05)
    if beta:  # the momentum's start-up overshoot is real (f_t up to 1.21), not noise
        assert max(measured) > 1.15 * rot.rotational_angular_step(rho, L)


def test_rotational_first_step_is_exact_per_neuron_without_centring():
    K, L, lr, wd = 64, 16, 1e-3, 0.1
    gen = torch.Generator().manual_seed(9)
    w = torch.randn(K, L, generator=gen, dtype=torch.float64, requires_grad=True)
    before = w.detach().clone()
    opt = sandbox.create("rvadamw", [w], lr=lr, weight_decay=wd, zero_mean=False)
    w.grad = torch.randn(K, L, generator=gen, dtype=torch.float64)
    opt.step()
    rho = rot.rotational_target("rvadamw", lr, wd)
    g = w.grad.numpy()
    d = 0.1 * g / (np.abs(g) + 1e-8)  # m_1/(sqrt(v_hat_1) + eps), m_1 = (1 - b1) g
    x = before.numpy()
    d_perp = d - x * ((d * x).sum(1, keepdims=True) / (x * x).sum(1, keepdims=True))
    np.testing.assert_allclose(_angle(x, w.detach().numpy()),
                               rot.first_step_angle(rho, np.linalg.norm(d_perp, axis=1), eps=1e-8),
                               rtol=1e-10)
    # AdamW from the same start takes a first step set by its lr and the norm (lr·sign(g): about
    # arctan(lr sqrt(L)/||w_row||)), unrelated to rho: the transient the rotational variant skips
    a = before.clone().requires_grad_(True)
    oa = sandbox.create("adamw", [a], lr=lr, weight_decay=wd)
    a.grad = w.grad.clone()
    oa.step()
    adamw_first = np.sqrt(np.mean(_angle(x, a.detach().numpy()) ** 2))
    assert adamw_first == pytest.approx(np.sqrt(np.mean(np.arctan(lr * math.sqrt(L) / np.linalg.norm(x, axis=1)) ** 2)),
                                        rel=0.05)
    assert adamw_first < 0.5 * rho

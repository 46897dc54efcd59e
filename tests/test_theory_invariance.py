"""Section 6: loss-scale and reparametrisation maps (round-off), noisy-quadratic statistics."""
import numpy as np
import pytest

from theory import (RuleTraits, loss_scale_update_factor, noisy_quadratic_newton_step,
                    noisy_quadratic_stationary_variance, rootfree_init_mismatch,
                    rootfree_reparam_map)
from theory_rule_table import traits_for

rng0 = np.random.default_rng(0)
A_MAT = rng0.standard_normal((12, 6))
B_VEC = rng0.standard_normal(12)


def _grad_theta(theta):
    """Gradient of L(theta) = sum log cosh(A theta - b) (non-quadratic, not scale-invariant)."""
    return A_MAT.T @ np.tanh(A_MAT @ theta - B_VEC)


def _run(rule, grad, x0, steps, lr, state, wd=0.0, batch=4, b1=0.9, b2=0.999):
    x, m, v, buf = x0.copy(), state["m"].copy(), state["v"].copy(), state.get("buf", 0 * x0).copy()
    xs = []
    for t in range(1, steps + 1):
        g = grad(x)
        if rule == "rfadamw":
            x = x * (1 - lr * wd)
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            x = x - lr * m / (batch * v)
        elif rule == "rfrmsprop":
            v = b2 * v + (1 - b2) * g * g
            buf = b1 * buf + g / (batch * v) + wd * x
            x = x - lr * buf
        elif rule == "adam":
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            x = x - lr * (m / (1 - b1 ** t)) / np.sqrt(v / (1 - b2 ** t))
        xs.append(x)
    return np.array(xs)


@pytest.mark.parametrize("rule,wd", [("rfadamw", 0.01), ("rfrmsprop", 0.01)])
def test_rootfree_reparametrisation_map_is_exact(rule, wd):
    D = np.exp(rng0.uniform(-1, 1, 6))
    th0 = rng0.standard_normal(6)
    st = {"m": 0.1 * rng0.standard_normal(6), "v": rng0.uniform(0.5, 2, 6), "buf": 0.1 * rng0.standard_normal(6)}
    mp = rootfree_reparam_map(D, theta=th0, m=st["m"], v=st["v"], buf=st["buf"])
    assert mp["damping"].max() == 0.0
    st_phi = {"m": mp["m"], "v": mp["v"], "buf": mp["buf"]}
    th = _run(rule, _grad_theta, th0, 300, 0.01, st, wd=wd)
    ph = _run(rule, lambda p: D * _grad_theta(D * p), mp["phi"], 300, 0.01, st_phi, wd=wd)
    np.testing.assert_allclose(D * ph, th, rtol=1e-10, atol=1e-12)


def test_adam_is_not_reparametrisation_invariant():
    D = np.exp(rng0.uniform(-1, 1, 6))
    th0 = rng0.standard_normal(6)
    z = {"m": np.zeros(6), "v": np.zeros(6)}
    th = _run("adam", _grad_theta, th0, 100, 0.01, z)
    ph = _run("adam", lambda p: D * _grad_theta(D * p), th0 / D, 100, 0.01, z)
    assert np.abs(D * ph - th).max() > 1e-3


def test_loss_scaling_adam_invariant_sgd_and_rootfree_not():
    th0 = rng0.standard_normal(6)
    z = {"m": np.zeros(6), "v": np.zeros(6)}
    c = 37.0
    a = _run("adam", _grad_theta, th0, 100, 0.01, z)
    b = _run("adam", lambda p: c * _grad_theta(p), th0, 100, 0.01, z)
    np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
    assert loss_scale_update_factor(c, 0) == 1.0
    assert loss_scale_update_factor(c, 1) == c
    # root-free, one step from a state scaled consistently (m -> c m, v -> c^2 v): step / c
    m, v, g = rng0.standard_normal(6), rng0.uniform(1, 2, 6), rng0.standard_normal(6)
    step = lambda m, v, g: (0.9 * m + 0.1 * g) / (4 * (0.999 * v + 0.001 * g * g))
    np.testing.assert_allclose(step(c * m, c * c * v, c * g), step(m, v, g) * loss_scale_update_factor(c, -1), rtol=1e-13)


def test_rootfree_init_mismatch_formula():
    D, b2, B, t = np.array([0.5, 2.0]), 0.99, 8, 100
    gs = rng0.standard_normal((t, 2))
    v_th, v_ph = np.full(2, 1 / B), np.full(2, 1 / B)
    for g in gs:
        v_th = b2 * v_th + (1 - b2) * g * g
        v_ph = b2 * v_ph + (1 - b2) * (D * g) ** 2
    np.testing.assert_allclose(v_ph - D ** 2 * v_th, rootfree_init_mismatch(D, b2, t, B), rtol=1e-10)


def _noisy_quadratic(H, B, eta, T, burn, rule, R=256, b2=0.995, beta=0.0, seed=1):
    rng = np.random.default_rng(seed)
    th = np.zeros((R, H.size))
    v, buf = np.broadcast_to(H / B, th.shape).copy(), np.zeros_like(th)
    acc_v, acc_s = 0.0, 0.0
    for t in range(T):
        g = H * th + np.sqrt(H / B) * rng.standard_normal(th.shape)
        if rule == "rootfree":
            v = b2 * v + (1 - b2) * g * g
            buf = beta * buf + g / (B * v)
        else:
            buf = beta * buf + g
        th = th - eta * buf
        if t >= burn:
            acc_v, acc_s = acc_v + v.mean(0), acc_s + (th * th).mean(0)
    n = T - burn
    return acc_v / n, acc_s / n


def test_rootfree_newton_limit_on_noisy_quadratic():
    H, B, eta = np.array([0.1, 0.5, 2.0, 10.0]), 4, 0.2
    pred = noisy_quadratic_newton_step(H, B, eta)
    np.testing.assert_allclose(pred["ratio"], 1 + eta / 2, rtol=1e-9)  # exact excess eta/2
    v, s = _noisy_quadratic(H, B, eta, 3000, 1000, "rootfree")
    np.testing.assert_allclose(B * v, pred["Bv"], rtol=0.03)
    np.testing.assert_allclose(s, eta / (2 * B * H), rtol=0.05)


def test_sgd_and_heavy_ball_stationary_variance():
    H, B, eta = np.array([0.5, 2.0, 5.0]), 8, 0.1
    s_pred = noisy_quadratic_stationary_variance(H, B, eta, traits_for("sgd"))
    np.testing.assert_allclose(s_pred, eta / (B * (2 - eta * H)), rtol=1e-12)
    _, s = _noisy_quadratic(H, B, eta, 2000, 400, "sgd")
    np.testing.assert_allclose(s, s_pred, rtol=0.05)
    hb = RuleTraits(1, 0.5, "heavy_ball")
    s_hb = noisy_quadratic_stationary_variance(H, B, 0.05, hb)
    _, s = _noisy_quadratic(H, B, 0.05, 2000, 400, "sgd", beta=0.5)
    np.testing.assert_allclose(s, s_hb, rtol=0.05)


def test_adam_stationary_variance_small_eta_limit():
    H, B, eta = np.array([0.1, 1.0, 10.0]), 16, 1e-4
    s = noisy_quadratic_stationary_variance(H, B, eta, traits_for("adam"))
    np.testing.assert_allclose(s, eta / (2 * np.sqrt(B * H)), rtol=1e-3)

"""Section 1: exact identities, checked to float64 round-off against numpy simulations."""
import numpy as np
import pytest

from theory import (exp_lr_alpha, exp_lr_schedule, exp_lr_state_map, gd_norm_sq_next,
                    heavy_ball_norm_sq, projected_norm_sq, update_scaling)


def _tang(w, x):
    return x - (x * w).sum(-1, keepdims=True) / (w * w).sum(-1, keepdims=True) * w


def _rayleigh(A):
    """Scale-invariant loss f(w) = w'Aw/w'w and its gradient."""
    def grad(w):
        r2 = w @ w
        return 2 * (A @ w - (w @ A @ w / r2) * w) / r2
    return grad


@pytest.mark.parametrize("decay,radial", [(0.0, False), (0.05, True)])
def test_heavy_ball_identity_matches_simulation(decay, radial):
    rng = np.random.default_rng(0)
    R, d, T, eta, beta = 16, 32, 400, 0.3, 0.9
    w = rng.standard_normal((R, d))
    p = rng.standard_normal((R, d)) if radial else np.zeros((R, d))
    init = (w * p).sum(1)
    r2, P = [(w * w).sum(1)], []
    for _ in range(T):
        p = beta * p + 0.7 * _tang(w, rng.standard_normal((R, d)))  # dampened input is fine
        P.append((p * p).sum(1))
        w = (1 - eta * decay) * w - eta * p
        r2.append((w * w).sum(1))
    r2, P = np.array(r2).T, np.array(P).T
    pred = heavy_ball_norm_sq(r2[:, 0], eta, beta, P, decay=decay, initial_radial=init)
    assert pred.shape == (R, T + 1)
    np.testing.assert_allclose(pred, r2, rtol=1e-12)
    if decay == 0:  # the catalogue's closed form, term by term
        t = 7
        closed = r2[:, t] + eta**2 * P[:, t] + 2 * eta**2 * sum(beta ** (t - k) * P[:, k] for k in range(t))
        np.testing.assert_allclose(closed, r2[:, t + 1], rtol=1e-12)


def test_heavy_ball_identity_detects_missing_decay():
    rng = np.random.default_rng(1)
    w, p, P, r2 = rng.standard_normal(8), np.zeros(8), [], []
    r2.append(w @ w)
    for _ in range(50):
        p = 0.9 * p + _tang(w, rng.standard_normal(8))
        P.append(p @ p)
        w = 0.99 * w - 0.1 * p
        r2.append(w @ w)
    assert np.max(np.abs(heavy_ball_norm_sq(r2[0], 0.1, 0.9, P) / np.array(r2) - 1)) > 1e-3


def test_projected_identity_with_preconditioned_buffer():
    rng = np.random.default_rng(2)
    R, d, T, eta, lam = 8, 20, 300, 0.05, 0.3
    w, m = rng.standard_normal((R, d)), np.zeros((R, d))
    r2, Q = [(w * w).sum(1)], []
    for _ in range(T):
        m = 0.9 * m + 0.1 * rng.standard_normal((R, d)) * rng.uniform(0.5, 2, d)  # not tangential
        q = _tang(w, m / np.sqrt(np.abs(m) + 1))
        Q.append((q * q).sum(1))
        w = w * (1 - eta * lam) - eta * q
        r2.append((w * w).sum(1))
    pred = projected_norm_sq(r2[0], eta, np.array(Q).T, decay=lam)
    np.testing.assert_allclose(pred, np.array(r2).T, rtol=1e-12)


def test_gd_identity_and_inverse_scaling_on_rayleigh():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((10, 10))
    grad = _rayleigh(A + A.T)
    w = rng.standard_normal(10)
    g = grad(w)
    assert abs(w @ g) < 1e-12 * np.linalg.norm(w) * np.linalg.norm(g)
    np.testing.assert_allclose(grad(3.7 * w), g * update_scaling(3.7, 1), rtol=1e-12)
    w1 = w - 0.2 * g
    np.testing.assert_allclose(gd_norm_sq_next(w @ w, 0.2, g @ g), w1 @ w1, rtol=1e-14)


def test_li_arora_without_momentum_to_roundoff():
    rng = np.random.default_rng(4)
    A = rng.standard_normal((12, 12))
    grad = _rayleigh(A + A.T)
    eta, lam, T = 0.1, 0.02, 200
    lrs = exp_lr_schedule(eta, lam, T)
    np.testing.assert_allclose(lrs[:3], eta * (1 - eta * lam) ** -np.array([1.0, 3.0, 5.0]))
    w = x = rng.standard_normal(12)
    for t in range(T):
        w = (1 - eta * lam) * w - eta * grad(w)
        x = x - lrs[t] * grad(x)
        np.testing.assert_allclose(x, w * (1 - eta * lam) ** -(t + 1), rtol=1e-10)


def test_li_arora_with_momentum_needs_the_buffer_map():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((10, 10))
    grad = _rayleigh(A + A.T)
    eta, lam, gam, T = 0.1, 0.01, 0.9, 300
    alpha = exp_lr_alpha(eta, lam, gam)
    assert abs(alpha**2 - (1 + gam - eta * lam) * alpha + gam) < 1e-14
    lrs = exp_lr_schedule(eta, lam, T, momentum=gam)
    w0 = rng.standard_normal(10)
    w, v = w0.copy(), np.zeros(10)                        # torch SGD, weight_decay=lam
    x, vt = exp_lr_state_map(w0, np.zeros(10), 0, eta, lam, gam)
    x0, vt0 = w0.copy(), np.zeros(10)                     # naive: zero buffer
    worst_naive = 0.0
    for t in range(T):
        v = gam * v + grad(w) + lam * w
        w = w - eta * v
        vt = gam * vt + grad(x)
        x = x - lrs[t] * vt
        vt0 = gam * vt0 + grad(x0)
        x0 = x0 - lrs[t] * vt0
        xm, vm = exp_lr_state_map(w, v, t + 1, eta, lam, gam)
        np.testing.assert_allclose(x, xm, rtol=1e-9)
        assert np.linalg.norm(vt - vm) <= 1e-8 * np.linalg.norm(vm)
        worst_naive = max(worst_naive, np.linalg.norm(x0 / np.linalg.norm(x0) - w / np.linalg.norm(w)))
    assert worst_naive > 1e-2  # equal zero buffers are not equivalent


def test_exp_lr_alpha_complex_roots_raise():
    with pytest.raises(ValueError):
        exp_lr_alpha(0.1, 0.1, 0.9)
    assert exp_lr_alpha(0.1, 0.01, 0.0) == pytest.approx(0.999)

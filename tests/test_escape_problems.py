"""The escape problems: geometry at fixed barrier, noise covariance H/B, exact k-rescaling."""
import math

import pytest
import torch

import sandbox
from sandbox.escape import EscapeProblem


@pytest.mark.parametrize("k", [0.5, 1.0, 3.0])
def test_sharpness_set_by_k_at_fixed_barrier(k):
    p = EscapeProblem(torch.tensor([k]), 8, barrier=0.07, h0=1.3, dtype=torch.float64)
    a = p.a
    x = torch.stack([-a[0], torch.zeros(()), a[0]]).reshape(3, 1)
    prob3 = EscapeProblem(torch.full((3,), k), 8, barrier=0.07, h0=1.3, dtype=torch.float64)
    U = prob3.loss(x)
    assert torch.allclose(U[1] - U[0], torch.tensor(0.07, dtype=torch.float64), rtol=1e-12)
    assert torch.allclose(prob3.escape_gradient(x[:, 0]), torch.zeros(3, dtype=torch.float64),
                          atol=1e-12)
    curv = prob3.escape_curvature(x[:, 0])
    assert torch.allclose(curv, torch.tensor([k * 1.3, -k * 1.3 / 2, k * 1.3], dtype=torch.float64))
    assert torch.allclose(p.H_b, torch.tensor([-k * 1.3 / 2], dtype=torch.float64))


def test_gradient_matches_autograd_and_scaling_is_a_change_of_length():
    ks = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    p = EscapeProblem(ks, 4, spectators=(5.0, 0.1), dtype=torch.float64)
    theta = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = theta.clone().requires_grad_(True)
    p.loss(t).sum().backward()
    assert torch.allclose(t.grad, p.gradient(theta), rtol=1e-12, atol=1e-12)
    # U_k(x) = U_1(sqrt(k) x): same barrier, curvature times k
    one = EscapeProblem(torch.ones(3, dtype=torch.float64), 4, dtype=torch.float64)
    x = theta[:, :1]
    assert torch.allclose(EscapeProblem(ks, 4, dtype=torch.float64).loss(x),
                          one.loss(x * ks.sqrt()[:, None]), rtol=1e-12)


def test_noise_covariance_is_hessian_over_batch_size():
    ks = torch.tensor([1.0, 4.0], dtype=torch.float64)
    B = 8
    p = EscapeProblem(ks.repeat_interleave(100_000), B, spectators=(5.0, 0.05), dtype=torch.float64)
    theta = p.initial_theta()  # at the minimum: the exact gradient is 0 in every direction
    g = p.sample_gradient(theta, torch.Generator().manual_seed(0)).reshape(2, 100_000, 3)
    var = g.var(dim=1)
    expect = torch.tensor([[1.0, 5.0, 0.05], [4.0, 5.0, 0.05]], dtype=torch.float64) / B
    # relative standard error of a variance from 1e5 samples: sqrt(2/1e5) = 0.45%
    assert torch.allclose(var, expect, rtol=0.03)
    assert g.mean(dim=1).abs().max() < 5 * math.sqrt(4.0 / B / 100_000)


def test_local_noise_follows_the_local_curvature_with_a_floor():
    p = EscapeProblem(torch.full((4,), 2.0), 4, noise="local", floor=0.25, dtype=torch.float64)
    a = float(p.a[0])
    theta = torch.tensor([[-a], [0.0], [-a / math.sqrt(3.0)], [-3 * a]], dtype=torch.float64)
    std2 = p.noise_std(theta)[:, 0] ** 2 * 4
    # |U''| at the well (H_a = 2), the barrier (|H_b| = 1), the inflection point (0 -> floor 0.5)
    # and far up the outer wall (U'' = 26 H_a/2 -> capped at H_a)
    assert torch.allclose(std2, torch.tensor([2.0, 1.0, 0.5, 2.0], dtype=torch.float64), atol=1e-12)


def test_local_noise_shape_factor():
    from theory.escape_laws import quartic_local_noise_factor

    assert quartic_local_noise_factor(1.0) == pytest.approx(1.0, rel=1e-12)
    # an independent quadrature of R = (H_a/ΔL) ∫ U'/C dx in x units, ΔL = 0.05, H_a = 3
    p = EscapeProblem(torch.full((200_001,), 3.0), 8, noise="local", floor=0.5, barrier=0.05,
                      dtype=torch.float64)
    a = float(p.a[0])
    x = torch.linspace(-a, 0.0, 200_001, dtype=torch.float64)
    c = p.noise_std(x[:, None])[:, 0] ** 2 * 8
    R = 3.0 / 0.05 * torch.trapezoid(p.escape_gradient(x) / c, x)
    assert float(R) == pytest.approx(quartic_local_noise_factor(0.5), rel=1e-6)
    assert quartic_local_noise_factor(0.25) > quartic_local_noise_factor(0.5) > 1.0
    with pytest.raises(ValueError, match="floor"):
        quartic_local_noise_factor(0.0)


def test_start_and_escape_line():
    p = EscapeProblem(torch.tensor([1.0, 4.0]), 8)
    theta = p.initial_theta()
    assert not p.escaped(theta).any()
    theta[:, 0] = 0.51 * p.a
    assert p.escaped(theta).all()
    theta[:, 0] = 0.49 * p.a
    assert not p.escaped(theta).any()


@pytest.mark.parametrize("kwargs, word", [
    ({"noise": "global"}, "noise"), ({"barrier": 0.0}, "barrier"), ({"floor": 0.0}, "floor"),
    ({"spectators": (1.0, -2.0)}, "spectators"),
])
def test_bad_settings_name_the_value(kwargs, word):
    with pytest.raises(ValueError, match=word):
        EscapeProblem(torch.ones(2), 8, **kwargs)


def test_bad_k_and_batch_size():
    with pytest.raises(ValueError, match="k must be > 0"):
        EscapeProblem(torch.tensor([1.0, 0.0]), 8)
    with pytest.raises(ValueError, match="batch_size"):
        EscapeProblem(torch.ones(2), 0)


@pytest.mark.parametrize("rule, power", [("sgd", 1.0), ("adam", 0.5), ("adai", 1.0)])
def test_problem_k_at_lr_is_problem_one_at_rescaled_lr(rule, power):
    """The exact rescaling of sandbox.escape.simulate: problem k at lr η equals problem 1 at lr
    η·k^((1+p)/2) in the unit y = √k·x, through the registry's real optimizers (same noise draws)."""
    k, lr, steps = 4.0, 0.02, 60
    traj = {}
    for kk, eta in ((k, lr), (1.0, lr * k ** power)):
        # Adai: a spectator that scales with k too, so its ratios v/v̄ are unchanged
        spectators = (3.0 * kk,) if rule == "adai" else ()
        p = EscapeProblem(torch.full((64,), kk), 8, spectators=spectators, dtype=torch.float64)
        theta = p.initial_theta()
        hp = {"eps": 0.0} if rule == "adam" else {}
        opt = sandbox.create(rule, [{"params": [theta], "replica_dims": 1}], lr=eta, **hp)
        gen = torch.Generator().manual_seed(3)
        for _ in range(steps):
            theta.grad = p.sample_gradient(theta, gen)
            opt.step()
        traj[kk] = theta * math.sqrt(kk)
    assert torch.allclose(traj[k], traj[1.0], rtol=1e-9, atol=1e-12)
    assert (traj[k] - traj[1.0]).abs().max() < 1e-9

"""The batched toy problems: shapes, the exact identities of scale invariance, the noise model,
the reparametrised variants, replicas through the real optimizers, and errors for people."""
import math

import pytest
import torch
import torch.nn.functional as F

import sandbox
from sandbox.toys import (CosineToy, GradientStream, NoiseDrivenToy, NoisyQuadratic,
                          NormalizedLinearToy, RayleighQuotientToy, Reparametrised)

SCALE_INVARIANT = {
    "noise": lambda: NoiseDrivenToy(12, 5, seed=1, shape=(3, 4)),
    "rayleigh": lambda: RayleighQuotientToy(12, 5, shape=(3, 4), seed=1),
    "rayleigh-noisy": lambda: RayleighQuotientToy(12, 5, sigma=0.5, seed=1),
    "cosine": lambda: CosineToy(2, 5, seed=1),
    "bn-linear": lambda: NormalizedLinearToy(7, 5, 5, batch=9, n_data=40, seed=1),
    "ln-linear": lambda: NormalizedLinearToy(7, 5, 5, batch=9, n_data=40, norm="layer", seed=1),
}


def _blocks(toy, x):
    return toy.invariant_rows(x) if hasattr(toy, "invariant_rows") else x.reshape(x.shape[0], -1)


@pytest.mark.parametrize("kind", list(SCALE_INVARIANT))
def test_orthogonality_and_inverse_scaling_to_round_off(kind):
    toy = SCALE_INVARIANT[kind]()
    noise = toy.draw_noise()
    g = toy.gradient(toy.w, noise)
    assert g.shape == toy.w.shape and g.dtype == torch.float64
    wb, gb = _blocks(toy, toy.w), _blocks(toy, g)
    cos = (wb * gb).sum(-1) / (wb.norm(dim=-1) * gb.norm(dim=-1))
    assert cos.abs().max() < 1e-13
    for c in (1e-3, 3.7, 1e4):
        np_ratio = (c * toy.gradient(c * toy.w, noise) - g).norm() / g.norm()
        assert np_ratio < 1e-13, (c, np_ratio)


def test_loss_is_invariant_and_gradient_is_its_autograd_gradient():
    for toy in (RayleighQuotientToy(6, 3, seed=2), CosineToy(5, 3, seed=2)):
        w = toy.w.clone().requires_grad_(True)
        (auto,) = torch.autograd.grad(toy.loss(w).sum(), w)
        torch.testing.assert_close(auto, toy.gradient(toy.w), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(toy.loss(4.2 * toy.w), toy.loss(toy.w), rtol=1e-13, atol=0)


def test_batchnorm_toy_matches_torch_batch_norm_and_eps_breaks_invariance():
    toy = NormalizedLinearToy(6, 4, 3, batch=8, n_data=30, eps=1e-5, seed=3)
    idx = toy.draw_noise()
    for r in range(3):  # one replica through torch's own BatchNorm (training mode, no affine)
        h = toy.x[idx[r]] @ toy.w[r].T
        z = F.batch_norm(h, None, None, training=True, eps=1e-5)
        ref = 0.5 * ((z @ toy.readout - toy.y[idx[r]]) ** 2).mean()
        torch.testing.assert_close(toy.loss(toy.w, idx)[r], ref, rtol=1e-12, atol=0)
    g = toy.gradient(toy.w, idx)  # with torch's eps the rows are no longer exactly invariant
    cos = ((toy.w * g).sum(-1) / (toy.w.norm(dim=-1) * g.norm(dim=-1))).abs().max()
    assert cos > 1e-9


def test_minibatches_differ_per_replica_and_step():
    toy = NormalizedLinearToy(4, 3, 6, batch=5, n_data=50, seed=0)
    a, b = toy.draw_noise(), toy.draw_noise()
    assert a.shape == (6, 5) and not torch.equal(a, b) and not torch.equal(a[0], a[1])


def test_noise_toy_keeps_its_random_stream_and_accepts_matrix_shapes():
    toy = NoiseDrivenToy(8, 3, seed=5, sigma=2.0)
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(3, 8, generator=gen, dtype=torch.float64)
    w = w / w.norm(dim=-1, keepdim=True)
    xi = 2.0 * torch.randn(3, 8, generator=gen, dtype=torch.float64)
    expected = (xi - w * (w * xi).sum(-1, keepdim=True)) / w.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(toy.w, w, rtol=0, atol=0)
    torch.testing.assert_close(toy.gradient(), expected, rtol=1e-15, atol=1e-15)
    m = NoiseDrivenToy(8, 3, seed=5, sigma=2.0, shape=(2, 4))
    assert m.w.shape == (3, 2, 4)
    torch.testing.assert_close(m.gradient().reshape(3, 8), expected, rtol=1e-15, atol=1e-15)
    with pytest.raises(ValueError, match="shape"):
        NoiseDrivenToy(8, 3, shape=(3, 3))


def test_rayleigh_gd_finds_the_smallest_eigenvalue():
    toy = RayleighQuotientToy(5, 16, eigenvalues=[3.0, 1.0, 4.0, 2.0, 5.0], seed=0)
    opt = sandbox.create("sgd", toy.param_groups(), lr=0.2)
    for _ in range(400):
        toy.fill_grad()
        opt.step()
    torch.testing.assert_close(toy.loss(toy.w), torch.full((16,), 1.0, dtype=torch.float64),
                               rtol=0, atol=1e-6)
    cos = (toy.w / toy.w.norm(dim=-1, keepdim=True)) @ toy.minimiser
    assert (cos.abs() > 1 - 1e-6).all()


def test_cosine_toy_adamp_reaches_the_target():
    toy = CosineToy(2, 32, target=[1.0, 1.0], shape=(1, 2), seed=0)
    opt = sandbox.create("adamp", toy.param_groups(), lr=0.05)
    start = toy.angle_to_target().clone()
    for _ in range(300):
        toy.fill_grad()
        opt.step()
    assert start.max() > 0.5 and toy.angle_to_target().max() < 0.05


def test_noisy_quadratic_noise_covariance_is_h_over_b():
    toy = NoisyQuadratic(d=4, replicas=20_000, batch_size=8, curvatures=[1.0, 4.0, 9.0, 16.0],
                         theta0=0.5, seed=0)
    g = toy.gradient(toy.w, toy.draw_noise())
    H = toy.hessian
    torch.testing.assert_close(toy.gradient(toy.w), toy.w @ H, rtol=1e-15, atol=0)
    cov = torch.cov((g - toy.w @ H).T)
    # sample covariance of 20k draws: standard error of a variance ~ sqrt(2/n) ≈ 1% relative
    torch.testing.assert_close(torch.diagonal(cov), torch.diagonal(H) / 8, rtol=0.05, atol=0)
    assert (cov - torch.diag(torch.diagonal(cov))).abs().max() < 0.05 * 16 / 8
    rot = NoisyQuadratic(d=4, replicas=3, rotate=True, seed=1)
    torch.testing.assert_close(rot.hessian, rot.hessian.T)
    assert not torch.allclose(rot.hessian, torch.diag(torch.diagonal(rot.hessian)))
    torch.testing.assert_close(torch.linalg.eigvalsh(rot.hessian),
                               torch.sort(rot.curvatures).values, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rot.fisher_diagonal, torch.diagonal(rot.hessian))


def test_reparametrised_variants_share_noise_and_map_gradients():
    base = NoisyQuadratic(d=3, replicas=4, batch_size=2, seed=0, theta0=torch.tensor([1.0, -2, 3]))
    D = torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64)
    stack = Reparametrised(base, diags=[1.0, D, 1.0], loss_scales=[1.0, 1.0, 7.0])
    assert stack.w.shape == (3, 4, 3)
    torch.testing.assert_close(stack.theta()[1], base.w)  # φ_0 = θ_0/D
    noise = base.draw_noise()
    g = stack.gradient(stack.w, noise)
    ref = base.gradient(base.w, noise)
    torch.testing.assert_close(g[0], ref)
    torch.testing.assert_close(g[1], D * ref)  # ∇_φ f(Dφ) = D ∇f
    torch.testing.assert_close(g[2], 7.0 * ref)
    with pytest.raises(ValueError, match="non-zero"):
        Reparametrised(base, diags=[1.0, torch.tensor([1.0, 0.0, 1.0])])
    with pytest.raises(ValueError, match="> 0"):
        Reparametrised(base, loss_scales=[1.0, -2.0])


def test_replicas_run_as_independent_trajectories_through_the_optimizer():
    """One (R, d) tensor under AdamP equals R separate runs (replica_dims=1 semantics)."""
    toy = NoiseDrivenToy(6, 3, seed=4, shape=(1, 6))
    singles = [NoiseDrivenToy(6, 1, seed=0, shape=(1, 6)) for _ in range(3)]
    for i, s in enumerate(singles):
        s.w.copy_(toy.w[i:i + 1])
    opt = sandbox.create("adamp", toy.param_groups(), lr=0.05, weight_decay=0.1)
    opts = [sandbox.create("adamp", s.param_groups(), lr=0.05, weight_decay=0.1) for s in singles]
    for _ in range(20):
        xi = toy.draw_noise()
        toy.w.grad = toy.gradient(toy.w, xi)
        opt.step()
        for i, (s, o) in enumerate(zip(singles, opts)):
            s.w.grad = s.gradient(s.w, xi[i:i + 1])
            o.step()
    for i, s in enumerate(singles):
        torch.testing.assert_close(toy.w[i], s.w[0], rtol=1e-12, atol=1e-14)


def test_gradient_stream_ignores_w():
    toy = GradientStream((3, 2), replicas=4, seed=0)
    xi = toy.draw_noise()
    torch.testing.assert_close(toy.gradient(toy.w, xi), toy.gradient(5 * toy.w + 1, xi))
    assert toy.gradient(toy.w).abs().max() == 0


@pytest.mark.parametrize("make, match", [
    (lambda: NormalizedLinearToy(norm="group"), "unknown norm"),
    (lambda: NormalizedLinearToy(batch=1), "batch must lie"),
    (lambda: NormalizedLinearToy(out_dim=1, norm="layer"), "out_dim >= 2"),
    (lambda: NoisyQuadratic(d=3, curvatures=[1.0, -1.0, 2.0]), "positive"),
    (lambda: NoisyQuadratic(batch_size=0), "batch_size"),
    (lambda: RayleighQuotientToy(4, 2, eigenvalues=[1.0, 2.0]), "length d=4"),
    (lambda: CosineToy(3, 2, target=[0.0, 0.0, 0.0]), "non-zero"),
    (lambda: RayleighQuotientToy(4, 0), "replicas must be >= 1"),
])
def test_bad_arguments_say_what_is_allowed(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_float32_and_device_argument():
    toy = RayleighQuotientToy(4, 2, dtype=torch.float32, device="cpu")
    assert toy.gradient(toy.w).dtype == torch.float32 and toy.w.device.type == "cpu"
    assert math.isclose(float(toy.w.norm(dim=-1)[0]), 1.0, rel_tol=1e-6)


def test_replica_benchmark_small_run_reports_a_speedup():
    from sandbox.benchmarks.replicas import COLUMNS, replica_benchmark

    table = replica_benchmark(quick=True, replicas=2000, loop_replicas=10, blocks=1)
    assert list(table.columns) == list(COLUMNS) and list(table["rule"]) == ["sgdp", "adamp"]
    assert (table["speedup"] > 5).all()  # 2000 replicas in one tensor vs a Python loop
    assert (table["threads"] == 1).all() and torch.get_num_threads() == 1  # restored (fixture)

"""Regression tests for divergences between the default (fast) path and the reference loop found
by review: each case compares impl="auto" with impl="reference" (float64 unless stated)."""
import torch

import sandbox


def _grads(ps, t):
    for p in ps:
        p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(t), dtype=p.dtype)


def _both(make, steps=4, between=None):
    out = []
    for impl in ("auto", "reference"):
        ps, opt = make(impl)
        for t in range(steps):
            _grads(ps, t)
            if between is not None and t == steps // 2:
                between(opt)
            opt.step()
        out.append([p.detach().clone() for p in ps])
    return max(float((a - b).abs().max()) for a, b in zip(*out))


def test_switching_a_group_from_torch_kernels_to_list_forms():
    def make(impl):
        g = torch.Generator().manual_seed(9)
        s = torch.randn(10, dtype=torch.float64, generator=g)
        b = torch.randn(600, 600, dtype=torch.float64, generator=g)
        return [s, b], sandbox.create("adamw", [{"params": [s], "project": True}, {"params": [b]}],
                                      impl=impl)

    assert _both(make, between=lambda o: o.param_groups[1].__setitem__("project", True)) < 1e-12


def test_sgd_nesterov_on_foreach_never_writes_into_grad():
    p = torch.randn(5, 7, dtype=torch.float64)
    opt = sandbox.create("sgd", [p], lr=0.1, momentum=0.9, nesterov=True)
    g = torch.randn(7, 5, dtype=torch.float64).t()  # laid out unlike p: torch's foreach kernel
    p.grad, g0 = g, g.clone()
    opt.step()
    opt.step()
    assert torch.equal(p.grad, g0)
    q = torch.randn(3, 4, dtype=torch.float64)
    q.grad = torch.randn(1, 4, dtype=torch.float64).expand(3, 4)  # one memory location per column
    sandbox.create("sgd", [q], lr=0.1, momentum=0.9, nesterov=True).step()


def test_parameter_that_is_a_strided_slice_of_a_bigger_buffer():
    for name in ("sgd", "adam", "adamw"):
        bigs = []
        for impl in ("auto", "reference"):
            big = torch.randn(5, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
            p = big[:, :4]
            opt = sandbox.create(name, [p], lr=0.1, impl=impl)
            for t in range(3):
                gbig = torch.randn(5, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(t))
                p.grad = gbig[:, :4]
                opt.step()
            bigs.append(big)
        assert float((bigs[0] - bigs[1]).abs().max()) < 1e-12, name


def test_group_mixing_float32_and_bfloat16_parameters():
    res = []
    for impl in ("auto", "reference"):
        torch.manual_seed(0)
        a, b = torch.randn(5, 7), torch.randn(5, 7).bfloat16()
        opt = sandbox.create("sgd", [a, b], lr=0.1, momentum=0.9, weight_decay=1e-2, impl=impl)
        for _ in range(3):
            a.grad, b.grad = torch.randn(5, 7), torch.randn(5, 7).bfloat16()
            opt.step()
        res.append(b.float())
    assert float((res[0] - res[1]).abs().max()) <= 2 * 2 ** -8 * float(res[1].abs().max())


def test_adai_with_tiny_gradients_stays_finite():
    for impl in ("auto", "reference"):
        p = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
        opt = sandbox.create("adaiw", [p], lr=0.1, impl=impl)
        p.grad = torch.randn(5, 7, generator=torch.Generator().manual_seed(1)) * 1e-20
        opt.step()
        assert torch.isfinite(p).all(), impl

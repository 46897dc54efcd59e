"""Per-step bookkeeping that is cheap for 1000s of tensors must stay exact:
the one-kernel non-finite check, and the cached layout check of torch's fused kernels."""
import pytest
import torch

import sandbox


def _opt(params, **kw):
    return sandbox.create("adamw", params, lr=1e-2, weight_decay=0.1, **kw)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_huge_finite_gradients_are_not_refused(dtype):
    # |g| sums to far beyond float16's range: the 1-norm overflows, the gradient is finite
    p = torch.zeros(4096, dtype=dtype, requires_grad=True)
    p.grad = torch.full_like(p, 60000.0)
    opt = _opt([p], impl="reference")
    opt.step()  # default nonfinite="raise": must not raise
    assert opt.skipped_steps == 0 and bool(torch.isfinite(p).all())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_one_bad_element_among_many_tensors_is_found(bad, dtype):
    params = [torch.ones(n, dtype=dtype, requires_grad=True) for n in (0, 1, 7, 300)]
    for p in params:
        p.grad = torch.ones_like(p)
    params[-1].grad[123] = bad
    before = [p.detach().clone() for p in params]
    opt = _opt(params)
    with pytest.raises(sandbox.NonFiniteGradientError, match="non-finite"):
        opt.step()
    assert all(torch.equal(p, b) for p, b in zip(params, before))
    skip = _opt(params, nonfinite="skip")
    skip.step()
    assert skip.skipped_steps == 1 and all(torch.equal(p, b) for p, b in zip(params, before))


def test_parameter_relaid_out_after_its_state_was_checked():
    """model.to(memory_format=channels_last) after some steps re-lays the parameter out while the
    state keeps the old strides: torch's fused kernel must not be used on that mix."""
    torch.manual_seed(0)
    w0 = torch.randn(8, 4, 3, 3, dtype=torch.float64)
    grads = [torch.randn(8, 4, 3, 3, dtype=torch.float64) for _ in range(5)]
    out = {}
    for impl in ("auto", "reference"):
        p = torch.nn.Parameter(w0.clone())
        opt = _opt([p], impl=impl)
        for t, g in enumerate(grads):
            if t == 2:
                p.data = p.data.contiguous(memory_format=torch.channels_last)
            p.grad = g.clone() if t < 2 else g.contiguous(memory_format=torch.channels_last)
            opt.step()
        out[impl] = (p.detach().clone(), {k: v.clone() for k, v in opt.state[p].items()})
    torch.testing.assert_close(out["auto"][0], out["reference"][0], rtol=1e-12, atol=0)
    for k in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(out["auto"][1][k], out["reference"][1][k], rtol=1e-12, atol=0)

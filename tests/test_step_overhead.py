"""Per-step bookkeeping that is cheap for 1000s of tensors must stay exact:
the one-kernel non-finite check, and the cached layout check of torch's fused kernels."""
import pytest
import torch

import sandbox


def _opt(params, **kw):
    return sandbox.create("adamw", params, lr=1e-2, weight_decay=0.1, **kw)


@pytest.mark.parametrize("dtype,value", [(torch.float16, 60000.0), (torch.bfloat16, 60000.0),
                                         (torch.float32, 60000.0), (torch.float32, 3e19),
                                         (torch.bfloat16, 3e19)])
def test_huge_finite_gradients_are_not_refused(dtype, value):
    # The gradient is finite, but its 2-norm is far beyond float16's range (60000·64), or its
    # sum of squares overflows float32 itself (3e19² > 3.4e38): the exact check must confirm it
    p = torch.zeros(4096, dtype=dtype, requires_grad=True)
    p.grad = torch.full_like(p, value)
    assert bool(torch.isfinite(p.grad).all())
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


@pytest.mark.parametrize("rule", ["adam", "adamw"])
def test_kept_state_lists_follow_every_change_of_the_state(rule):
    """torch's Adam kernels get lists of state tensors kept between steps: they must stay right
    when the stepped subset changes, a reference step intervenes, a group is added, a checkpoint
    is loaded, or the dtype changes. Compared with the reference path throughout (float64)."""
    torch.manual_seed(0)
    shapes = [(3, 4), (5,), (2, 2, 2)]
    w0 = [torch.randn(s, dtype=torch.float64) for s in shapes]
    extra0 = torch.randn(6, dtype=torch.float64)
    grads = [[torch.randn(s, dtype=torch.float64) for s in shapes + [(6,)]] for _ in range(12)]
    runs = {}
    for impl in ("auto", "reference"):
        ps = [torch.nn.Parameter(w.clone()) for w in w0]
        extra = torch.nn.Parameter(extra0.clone())
        opt = sandbox.create(rule, ps, lr=1e-2, weight_decay=0.1, impl=impl)
        for t, g in enumerate(grads):
            if t == 6:
                opt.add_param_group({"params": [extra]})
            for i, p in enumerate(ps + ([extra] if t >= 6 else [])):
                p.grad = None if (t in (2, 3) and i == 1) else g[i].clone()  # a subset stepped
            if impl == "auto" and t == 4:
                opt.impl = "reference"  # one step on the reference path, then back
            opt.step()
            opt.impl = impl
            if t == 8:  # a checkpoint round trip replaces every state tensor
                opt.load_state_dict(opt.state_dict())
        runs[impl] = (ps + [extra], opt)
    (pa, oa), (pr, orf) = runs["auto"], runs["reference"]
    assert oa.last_impl == "fast"
    for a, r in zip(pa, pr):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=0)
        for k in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(oa.state[a][k], orf.state[r][k], rtol=1e-12, atol=0)


def test_last_info_of_a_torch_kernel_step_names_exactly_the_stepped_parameters():
    ps = [torch.nn.Parameter(torch.randn(4)) for _ in range(3)]
    proj = torch.nn.Parameter(torch.randn(3, 4))
    opt = sandbox.create("adamw", ps, lr=1e-2)
    opt.add_param_group({"params": [proj], "project": True})  # a stage chain, not torch's rule
    for p in ps[:2] + [proj]:
        p.grad = torch.randn_like(p)
    opt.step()
    assert opt.last_impl == "fast"
    info = opt.last_info
    assert len(info) == 3 and set(map(id, info)) == {id(ps[0]), id(ps[1]), id(proj)}
    assert info[ps[0]] == {} and ps[2] not in info and info.get(ps[2], "absent") == "absent"
    assert "projection" in info[proj]  # the chain's own diagnostics are kept
    with pytest.raises(TypeError):
        info[ps[0]]["x"] = 1  # shared and read-only

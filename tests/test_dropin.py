"""Drop-in torch.optim behaviour for every registered rule."""
import io

import pytest
import torch
import torch.nn as nn

import sandbox

from rule_kwargs import make

ALL = sandbox.available()


def _net(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).to(dtype)


def _batches(n, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 2, 6, 6, generator=g, dtype=dtype), torch.randint(0, 3, (8,), generator=g))
            for _ in range(n)]


def _train(model, opt, batches, closure=False, sched=None):
    loss_fn = nn.CrossEntropyLoss()
    for x, y in batches:
        def f():
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            return loss
        if closure:
            loss = opt.step(f)
            assert torch.is_tensor(loss) and loss.ndim == 0
        else:
            f()
            opt.step()
        if sched is not None:
            sched.step()


@pytest.mark.parametrize("name", ALL)
def test_state_dict_roundtrip_continues_bit_identically(name, tmp_path):
    batches = _batches(12)
    ref = _net()
    opt = make(name, ref.parameters(), weight_decay=0.01)
    _train(ref, opt, batches)

    model = _net()
    opt1 = make(name, model.parameters(), weight_decay=0.01)
    _train(model, opt1, batches[:6])
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "opt": opt1.state_dict()}, path)
    ckpt = torch.load(path, weights_only=True)
    model2 = _net(seed=123)
    model2.load_state_dict(ckpt["model"])
    opt2 = make(name, model2.parameters(), weight_decay=0.01)
    opt2.load_state_dict(ckpt["opt"])
    _train(model2, opt2, batches[6:])
    for a, b in zip(ref.parameters(), model2.parameters()):
        assert torch.equal(a, b), f"{name}: resumed run differs"
    for (pa, sa), (pb, sb) in zip(opt.state.items(), opt2.state.items()):
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}: state {k} differs after resume"


@pytest.mark.parametrize("name", ALL)
def test_grad_is_never_modified(name):
    model = _net()
    opt = make(name, model.parameters(), weight_decay=0.1, project=True)
    x, y = _batches(1)[0]
    for _ in range(3):
        opt.zero_grad()
        nn.CrossEntropyLoss()(model(x), y).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        opt.step()
        for p, g in zip(model.parameters(), grads):
            assert torch.equal(p.grad, g), f"{name} modified p.grad"


@pytest.mark.parametrize("name", ALL)
def test_closure_and_lr_scheduler(name):
    model = _net()
    opt = make(name, model.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    lr0 = opt.param_groups[0]["lr"]
    _train(model, opt, _batches(4), closure=True, sched=sched)
    assert opt.param_groups[0]["lr"] == pytest.approx(lr0 * 0.25)


def test_scheduler_changes_the_steps_like_torch():
    """sandbox sgd under a scheduler equals torch.optim.SGD under the same scheduler."""
    runs = []
    for factory in (lambda p: sandbox.create("sgd", p, lr=0.1, momentum=0.9),
                    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, foreach=False)):
        model = _net()
        opt = factory(model.parameters())
        _train(model, opt, _batches(6), sched=torch.optim.lr_scheduler.ExponentialLR(opt, 0.7))
        runs.append(list(model.parameters()))
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ALL)
def test_param_groups_with_their_own_hyperparameters(name):
    """Two groups in one optimizer equal two optimizers (rules without a global statistic)."""
    torch.manual_seed(0)
    a, b = torch.randn(5, 4, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    ga, gb = torch.randn(5, 4, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    a1, b1, a2, b2 = a.clone(), b.clone(), a.clone(), b.clone()
    both = make(name, [{"params": [a1], "lr": 0.01, "weight_decay": 0.1},
                       {"params": [b1], "lr": 0.003}])
    assert both.param_groups[1]["weight_decay"] == sandbox.info(name).defaults["weight_decay"]
    one = make(name, [a2], lr=0.01, weight_decay=0.1)
    two = make(name, [b2], lr=0.003)
    for _ in range(5):
        a1.grad, b1.grad, a2.grad, b2.grad = ga, gb, ga, gb
        both.step(), one.step(), two.step()
    if sandbox.info(name).momentum_kind == "adaptive":
        # Adai's β1 uses the mean of v̂ over ALL groups: groups are coupled by design.
        assert not torch.equal(a1, a2)
    else:
        assert torch.equal(a1, a2) and torch.equal(b1, b2)


@pytest.mark.parametrize("name", ALL)
def test_params_without_grad_are_skipped_and_zero_size_params_work(name):
    w, frozen, empty = torch.randn(3, 2), torch.randn(4), torch.randn(0, 3)
    opt = make(name, [w, frozen, empty])
    before = frozen.clone()
    w.grad, empty.grad = torch.randn(3, 2), torch.randn(0, 3)
    opt.step()
    assert torch.equal(frozen, before) and frozen not in opt.state
    assert torch.isfinite(w).all() and empty.shape == (0, 3)


@pytest.mark.parametrize("name", ALL)
def test_channels_last_and_non_contiguous_equal_contiguous(name):
    torch.manual_seed(0)
    w0 = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    grads = [torch.randn(6, 4, 3, 3, dtype=torch.float64) for _ in range(4)]
    # make some gradients tangential per output channel so that the projection fires
    for g in grads[::2]:
        r, gr = w0.reshape(6, -1), g.view(6, -1)
        gr -= r * (r * gr).sum(1, keepdim=True) / (r * r).sum(1, keepdim=True)
    layouts = {
        "contiguous": w0.clone(),
        "channels_last": w0.clone().to(memory_format=torch.channels_last),
        "transposed": w0.clone().transpose(0, 1).contiguous().transpose(0, 1),
    }
    assert not layouts["transposed"].is_contiguous()
    for w in layouts.values():
        opt = make(name, [w], weight_decay=0.05, project=True)
        for g in grads:
            w.grad = g.clone().to(memory_format=torch.channels_last) if w.is_contiguous(
                memory_format=torch.channels_last) else g.clone()
            opt.step()
    ref = layouts["contiguous"]
    for k, w in layouts.items():
        torch.testing.assert_close(w, ref, rtol=1e-13, atol=1e-15, msg=f"{name}: {k} differs")
    assert layouts["channels_last"].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_dtypes(name, dtype):
    model = _net(dtype=torch.float32).to(dtype)
    opt = make(name, model.parameters(), weight_decay=0.01)
    _train(model, opt, _batches(3, dtype=dtype))
    for p in model.parameters():
        assert p.dtype == dtype and torch.isfinite(p).all()
    full = {k for s in sandbox.info(name).stages(opt.defaults) for k in getattr(s, "FULL_PRECISION_STATE", ())}
    for s in opt.state.values():
        for k, v in s.items():
            if k == "step":
                continue
            want = torch.float32 if (k in full and dtype.itemsize == 2) else dtype
            assert v.dtype == want, f"state {k} is {v.dtype}"


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_default_path_equals_reference_and_moves_weights_in_every_dtype(name, dtype):
    """One step from identical gradients: the default path (fast where available) equals the
    reference loop within a few units of round-off, and the step really changes the weights.
    (torch 2.13's fused CPU SGD is a silent no-op on 16-bit tensors: this catches such kernels.)"""
    gen = torch.Generator().manual_seed(0)
    w0 = [torch.randn(6, 3, 2, 2, generator=gen), torch.randn(7, generator=gen)]
    g0 = [torch.randn(w.shape, generator=gen) for w in w0]
    out = {}
    # LARS's relative step is lr·η (1e-4 at its η = 1e-3), below 16-bit resolution: η = 1 here
    trust = {"trust_coefficient": 1.0} if "trust_coefficient" in sandbox.info(name).defaults else {}
    for impl in ("auto", "reference"):
        ws = [w.to(dtype).clone() for w in w0]
        opt = make(name, ws, lr=0.1, weight_decay=0.01, impl=impl, **trust)
        for w, g in zip(ws, g0):
            w.grad = g.to(dtype)
        opt.step()
        out[impl] = ws
    ulp = torch.finfo(dtype).eps
    for a, b, w in zip(out["auto"], out["reference"], w0):
        scale = float(w.abs().max())
        assert float((a.double() - b.double()).abs().max()) <= 4 * ulp * scale, f"{name} {dtype}"
        assert not torch.equal(b, w.to(dtype)), f"{name} {dtype}: the step did not move the weights"


@pytest.mark.parametrize("name", ALL)
def test_gradients_laid_out_unlike_their_parameter(name):
    """A transposed gradient (as autograd returns for batched matmuls) or a channels_last
    gradient of a contiguous weight gives the same step as a contiguous one, on every path."""
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(4, 6, 12, generator=gen, dtype=torch.float64)
    c0 = torch.randn(6, 4, 3, 3, generator=gen, dtype=torch.float64)
    g = torch.randn(4, 12, 6, generator=gen, dtype=torch.float64).transpose(1, 2)
    h = torch.randn(6, 4, 3, 3, generator=gen, dtype=torch.float64).to(memory_format=torch.channels_last)
    assert not g.is_contiguous() and not h.is_contiguous()
    results = []
    for layout in ("odd", "contiguous"):
        for impl in ("auto", "reference"):
            w, c = w0.clone(), c0.clone()
            opt = make(name, [w, c], lr=0.1, momentum=0.9, impl=impl) if "momentum" in \
                sandbox.info(name).defaults else make(name, [w, c], lr=0.1, impl=impl)
            for _ in range(3):
                w.grad = g.clone() if layout == "odd" else g.contiguous()
                c.grad = h.clone() if layout == "odd" else h.contiguous()
                opt.step()
            results.append((w, c))
    ref = results[-1]
    for got in results[:-1]:
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_adai_bf16_full_precision_state_survives_a_checkpoint():
    model = _net(dtype=torch.bfloat16)
    opt = make("adai", model.parameters())
    _train(model, opt, _batches(2, dtype=torch.bfloat16))
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    opt2 = make("adai", model.parameters())
    opt2.load_state_dict(torch.load(buf, weights_only=True))
    for p in model.parameters():
        a, b = opt.state[p]["beta1_prod"], opt2.state[p]["beta1_prod"]
        assert b.dtype == torch.float32 and torch.equal(a, b)
        assert opt2.state[p]["exp_avg"].dtype == torch.bfloat16

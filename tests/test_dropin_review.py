"""Drop-in review: situations of real training loops (schedulers, checkpoints, copies, AMP,
hand-edited groups, odd layouts), on both implementations (``impl='auto'`` = fast where
available, ``impl='reference'`` = the per-tensor loop)."""
import copy
import io
import pickle

import pytest
import torch
import torch.nn as nn

import sandbox

from rule_kwargs import rule_kwargs
from rule_table import expected_impl

ALL = sandbox.available()
IMPLS = ("auto", "reference")


def _kw(name, **extra):
    """Valid hyperparameters with momentum on where the rule has it (so buffers exist)."""
    mom = {"momentum": 0.9} if "momentum" in sandbox.info(name).defaults else {}
    return rule_kwargs(name, **{**mom, "weight_decay": 0.01, **extra})


def _params(seed=0, dtype=torch.float64):
    """A conv weight (projectable), a matrix, a bias and a second matrix."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype) for s in [(6, 4, 3, 3), (5, 7), (7,), (3, 4)]]


def _set_grads(ps, t, skip=()):
    g = torch.Generator().manual_seed(100 + t)
    for i, p in enumerate(ps):
        grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
        p.grad = None if i in skip else grad


def _maxdiff(xs, ys):
    return max(float((x - y).detach().abs().max()) for x, y in zip(xs, ys))


# --- LR schedulers ---------------------------------------------------------------------------
SCHEDULERS = {
    "step": lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5),
    "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 20),
    "lambda": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1 / (1 + e)),
    # cycles betas[0] (rules with 'betas') or momentum (rules with 'momentum') too
    "onecycle": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=25),
}


@pytest.mark.parametrize("sched", list(SCHEDULERS))
@pytest.mark.parametrize("name", ALL)
def test_schedulers_fast_equals_reference(name, sched):
    out = {}
    for impl in IMPLS:
        ps = _params()
        opt = sandbox.create(name, [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.02}],
                             impl=impl, **_kw(name))
        s = SCHEDULERS[sched](opt)
        seen = set()
        for t in range(20):
            _set_grads(ps, t)
            opt.step()
            s.step()
            seen.add(opt.last_impl)
        out[impl] = ps
        assert seen == {expected_impl(name) if impl == "auto" else "reference"}
    assert _maxdiff(out["auto"], out["reference"]) < 1e-12


@pytest.mark.parametrize("name, cls, kw", [
    ("sgd", torch.optim.SGD, dict(momentum=0.9, weight_decay=0.01)),
    ("adam", torch.optim.Adam, dict(weight_decay=0.01)),
    ("adamw", torch.optim.AdamW, dict(weight_decay=0.01)),
])
@pytest.mark.parametrize("impl", IMPLS)
def test_onecycle_lr_and_momentum_reach_the_step_like_torch(name, cls, kw, impl):
    """OneCycleLR moves lr and momentum/betas[0] every step: same trajectory as torch.optim."""
    runs = []
    for make in (lambda p: sandbox.create(name, p, impl=impl, **kw),
                 lambda p: cls(p, foreach=False, **kw)):
        ps = _params()
        opt = make(ps)
        s = SCHEDULERS["onecycle"](opt)
        for t in range(20):
            _set_grads(ps, t)
            opt.step()
            s.step()
        runs.append(ps)
    assert _maxdiff(*runs) < 1e-12


# --- hand-edited groups, add_param_group, grad=None --------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_edited_groups_added_groups_and_missing_grads_fast_equals_reference(name):
    out = {}
    for impl in IMPLS:
        ps = _params()
        opt = sandbox.create(name, ps[:2], impl=impl, **_kw(name))
        for t in range(10):
            if t == 3:
                opt.add_param_group({"params": ps[2:], "lr": 0.03, "weight_decay": 0.1})
            if t == 5:
                opt.param_groups[0]["weight_decay"] = 0.2
                opt.param_groups[1]["lr"] = 0.005
            _set_grads(ps, t, skip=(t % 3,))
            opt.step()
        out[impl] = ps
    assert _maxdiff(out["auto"], out["reference"]) < 1e-12


# --- 0-d tensor hyperparameters (torch.optim accepts lr=torch.tensor(...)) ---------------------
@pytest.mark.parametrize("key", ["lr", "weight_decay"])
@pytest.mark.parametrize("name", ALL)
def test_tensor_hyperparameters_fast_equals_reference(name, key):
    out = {}
    for impl in IMPLS:
        ps = _params()
        kw = _kw(name)
        kw[key] = torch.tensor(float(kw.get(key, 0.01)), dtype=torch.float64)
        opt = sandbox.create(name, ps, impl=impl, **kw)
        sched = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
        for t in range(4):
            _set_grads(ps, t)
            opt.step()
            sched.step()
        out[impl] = ps
    assert _maxdiff(out["auto"], out["reference"]) < 1e-12


# --- checkpoints and copies ----------------------------------------------------------------------
def _continue(opt, ps, start, n=4):
    for t in range(start, start + n):
        _set_grads(ps, t)
        opt.step()


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("name", ALL)
def test_copied_optimizer_continues_identically(name, how):
    ps = _params()
    opt = sandbox.create(name, [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.02}], **_kw(name))
    _continue(opt, ps, 0)
    twin = copy.deepcopy(opt) if how == "deepcopy" else pickle.loads(pickle.dumps(opt))
    ps2 = [p for g in twin.param_groups for p in g["params"]]
    assert twin.rule is opt.rule and twin.impl == opt.impl and twin.nonfinite == opt.nonfinite
    _continue(opt, ps, 4)
    _continue(twin, ps2, 4)
    assert all(torch.equal(a, b) for a, b in zip(ps, ps2))
    twin.add_param_group({"params": [torch.zeros(3, dtype=torch.float64)]})


def test_deepcopy_of_model_and_optimizer_together():
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    opt = sandbox.create("adamp", model.parameters(), lr=0.01)
    model2, opt2 = copy.deepcopy((model, opt))
    assert [id(p) for p in opt2.param_groups[0]["params"]] == [id(p) for p in model2.parameters()]
    x = torch.randn(8, 4, dtype=torch.float64)
    for m, o in ((model, opt), (model2, opt2)):
        for _ in range(3):
            o.zero_grad()
            m(x).pow(2).mean().backward()
            o.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters()))


@pytest.mark.parametrize("name", ["adamp", "adai", "sgd"])
def test_add_param_group_after_load_state_dict(name):
    """Resume, then unfreeze a layer: torch's loader must not leave keys the rule refuses."""
    ps = _params()
    opt = sandbox.create(name, ps[:2], **_kw(name))
    _continue(opt, ps[:2], 0, 2)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    opt2 = sandbox.create(name, [p.clone() for p in ps[:2]], **_kw(name))
    opt2.load_state_dict(torch.load(buf, weights_only=True))
    opt2.add_param_group({"params": ps[2:], "lr": 0.01})
    assert opt2.param_groups[-1]["differentiable"] is False  # torch's option; True is refused


@pytest.mark.parametrize("name, cls, kw", [
    ("sgd", torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
    ("adam", torch.optim.Adam, dict(lr=0.01)),
    ("adamw", torch.optim.AdamW, dict(lr=0.01)),
])
@pytest.mark.parametrize("impl", IMPLS)
def test_torch_optim_checkpoint_resumes_in_the_same_rule(name, cls, kw, impl):
    ps, ps2 = _params(), _params()
    a = cls(ps, **kw)
    _continue(a, ps, 0, 3)
    b = sandbox.create(name, ps2, impl=impl, **kw)
    for p, q in zip(ps, ps2):
        q.copy_(p)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    _continue(a, ps, 3)
    _continue(b, ps2, 3)
    assert _maxdiff(ps, ps2) < 1e-12


def test_named_parameters_are_accepted_like_torch():
    model = nn.Linear(3, 2)
    opt = sandbox.create("adamp", model.named_parameters(), lr=0.01)
    opt.add_param_group({"params": [("extra", torch.zeros(4, requires_grad=True))]})
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]


# --- AMP (GradScaler on the CPU) -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sgdp", "adamw", "adaip", "rfadamw"])
def test_grad_scaler_skips_inf_steps_and_unscales(name):
    """scaler.step skips the inf step itself (nonfinite='raise' never fires); with unscale_ and
    clipping the run equals the unscaled run without that step."""
    runs = []
    for use_scaler in (True, False):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
        opt = sandbox.create(name, model.parameters(), **rule_kwargs(name))
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
        x = torch.randn(6, 4, dtype=torch.float64)
        for t in range(5):
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            if use_scaler:
                scaler.scale(loss * float("inf") if t == 2 else loss).backward()
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(opt)
                scaler.update()
            elif t != 2:
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
        runs.append(list(model.parameters()))
    assert opt._step_calls == 4
    assert _maxdiff(*runs) < 1e-14


# --- layouts -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_transposed_and_strided_parameters_fast_equals_reference(name):
    out = {}
    for impl in IMPLS:
        base = _params()[1]
        buf = base.clone()
        ps = [base.clone().t(), buf[:, ::2]]  # a transposed leaf, a strided slice of a buffer
        opt = sandbox.create(name, ps, impl=impl, **_kw(name))
        _continue(opt, ps, 0)
        out[impl] = [ps[0], buf]
    assert _maxdiff(out["auto"], out["reference"]) < 1e-12
    assert torch.equal(out["auto"][1][:, 1::2], _params()[1][:, 1::2])  # outside the slice


def test_sparse_gradient_is_refused_with_a_clear_message():
    emb = nn.Embedding(10, 3, sparse=True)
    opt = sandbox.create("adam", emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        opt.step()

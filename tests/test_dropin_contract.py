"""The drop-in contract under hostile input: a step completes or changes nothing; checkpoints,
torch.optim keyword arguments, parameter groups, complex parameters and infinite
hyperparameters are accepted as torch defines them or refused with an error naming the
parameter, the value and what is allowed."""
import copy

import pytest
import torch

import sandbox
from rule_kwargs import rule_kwargs
from rule_table import TABLE

ALL = list(TABLE)
IMPLS = ("auto", "reference")


def _params(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_(True)
            for s in [(6, 4, 3), (5, 7), (7,)]]


def _grads(ps, seed):
    g = torch.Generator().manual_seed(seed)
    for p in ps:
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)


def _kw(name, **extra):
    mom = {"momentum": 0.9} if "momentum" in sandbox.info(name).defaults else {}
    return rule_kwargs(name, **{**mom, "weight_decay": 0.01, **extra})


def _snapshot(opt, ps):
    return ([p.detach().clone() for p in ps],
            [{k: (v.clone() if torch.is_tensor(v) else v) for k, v in opt.state[p].items()} for p in ps])


def _unchanged(opt, ps, snap):
    params, states = snap
    assert all(torch.equal(p, q) for p, q in zip(ps, params))
    for p, st in zip(ps, states):
        assert opt.state[p].keys() == st.keys()
        assert all(torch.equal(opt.state[p][k], v) if torch.is_tensor(v) else opt.state[p][k] == v
                   for k, v in st.items())


# --- 1. a step completes or changes nothing --------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ALL)
def test_a_bad_state_tensor_in_the_last_parameter_changes_nothing(name, impl):
    ps = _params()
    opt = sandbox.create(name, ps, impl=impl, **_kw(name))
    _grads(ps, 0)
    opt.step()
    key = next(k for k, v in opt.state[ps[1]].items() if torch.is_tensor(v) and v.dim() > 0)
    opt.state[ps[1]][key] = torch.zeros(3, 3, dtype=torch.float64)  # wrong shape
    snap = _snapshot(opt, ps)
    _grads(ps, 1)
    with pytest.raises(ValueError, match=rf"state '{key}' of group 0 param 1 \(shape \(5, 7\).*"
                                         r"has shape \(3, 3\)"):
        opt.step()
    _unchanged(opt, ps, snap)


@pytest.mark.parametrize("name", ["sgd", "adamw", "adamp", "sgdp", "adai", "rfadamw"])
def test_a_hyperparameter_that_overflows_the_dtype_is_refused_before_any_write(name):
    ps = _params(torch.float32)
    opt = sandbox.create(name, [{"params": ps[:2]}, {"params": ps[2:], "lr": 1e39}], **_kw(name))
    _grads(ps, 0)
    snap = _snapshot(opt, ps)
    with pytest.raises(ValueError, match=r"lr=1e\+39 in group 1 overflows the parameters' dtype float32"):
        opt.step()
    _unchanged(opt, ps, snap)
    ps64 = _params(torch.float64)
    opt64 = sandbox.create(name, ps64, **_kw(name, lr=1e39))
    _grads(ps64, 0)
    opt64.step()  # representable in float64


# --- 2. load_state_dict validates ----------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_load_state_dict_refuses_a_wrong_shape_and_keeps_the_optimizer(name):
    ps = _params()
    opt = sandbox.create(name, ps, **_kw(name))
    _grads(ps, 0)
    opt.step()
    sd = opt.state_dict()
    bad = copy.deepcopy(sd)
    key = next(k for k, v in bad["state"][0].items() if torch.is_tensor(v) and v.dim() > 0)
    bad["state"][0][key] = torch.zeros(2, 2, dtype=torch.float64)
    before = _snapshot(opt, ps)
    with pytest.raises(ValueError, match=rf"state '{key}' of group 0 param 0 \(shape \(6, 4, 3\)"):
        opt.load_state_dict(bad)
    _unchanged(opt, ps, before)
    missing = copy.deepcopy(sd)
    del missing["state"][0][key]
    if missing["state"][0]:  # (an empty state is a fresh start, as in torch)
        with pytest.raises(ValueError, match=rf"lacks \['{key}'\]"):
            opt.load_state_dict(missing)
        _unchanged(opt, ps, before)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", [n for n in ALL if "step" in
                                  {k for s in sandbox.info(n).stages(rule_kwargs(n)) for k in s.state}])
def test_a_numeric_step_in_a_checkpoint_is_converted_as_torch_does(name, impl):
    ref, ps = _params(), _params()
    o_ref = sandbox.create(name, ref, impl=impl, **_kw(name))
    opt = sandbox.create(name, ps, impl=impl, **_kw(name))
    for t in range(2):
        _grads(ref, t)
        o_ref.step()
    sd = copy.deepcopy(o_ref.state_dict())
    for st in sd["state"].values():
        st["step"] = int(st["step"])  # as older torch.optim checkpoints hold it
    opt.load_state_dict(sd)
    with torch.no_grad():
        for a, b in zip(ps, ref):
            a.copy_(b)
    assert all(opt.state[p]["step"].dtype == torch.float32 for p in ps)
    for t in range(2, 4):
        _grads(ref, t)
        _grads(ps, t)
        o_ref.step()
        opt.step()
    assert all(torch.allclose(a, b, rtol=1e-13, atol=0) for a, b in zip(ps, ref))


# --- 3. torch.optim's keyword arguments ------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ALL)
def test_maximize_follows_minus_the_gradient(name, impl):
    a, b = _params(), _params()
    oa = sandbox.create(name, a, impl=impl, maximize=True, **_kw(name))
    ob = sandbox.create(name, b, impl=impl, **_kw(name))
    for t in range(3):
        _grads(a, t)
        _grads(b, t)
        for p in b:
            p.grad = -p.grad
        oa.step()
        ob.step()
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name,cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_amsgrad_is_torchs(name, cls, impl):
    a, b = _params(), _params()
    oa = sandbox.create(name, a, impl=impl, amsgrad=True, weight_decay=0.01, lr=0.01)
    ob = cls(b, amsgrad=True, weight_decay=0.01, lr=0.01, foreach=False)
    for t in range(5):
        _grads(a, t)
        _grads(b, t)
        for p in a:  # shrink the gradients so that the running maximum matters
            p.grad *= 1.0 / (t + 1)
        for p in b:
            p.grad *= 1.0 / (t + 1)
        oa.step()
        ob.step()
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(oa.state[x]["max_exp_avg_sq"], ob.state[y]["max_exp_avg_sq"])


@pytest.mark.parametrize("key", ["capturable", "differentiable"])
def test_capturable_and_differentiable_are_refused_by_name(key):
    with pytest.raises(ValueError, match=rf"invalid {key}=True: {key} must be False"):
        sandbox.create("adamw", _params(), **{key: True})


def test_fused_true_is_refused_where_the_rule_has_no_fused_form():
    sandbox.create("adamw", _params(), fused=True)
    sandbox.create("adamw", _params(), foreach=True)
    with pytest.raises(ValueError, match=r"fused=True, but .* has no fused form"):
        sandbox.create("adaip", _params(), lr=0.1, fused=True)


def test_foreach_and_fused_false_run_the_stages():
    ps = _params()
    opt = sandbox.create("adamw", ps, foreach=False, fused=False)
    _grads(ps, 0)
    opt.step()
    assert opt.last_impl == "reference"


@pytest.mark.parametrize("cls,name,flag", [
    (torch.optim.Adam, "adam", {"capturable": True}),
    (torch.optim.Adam, "adam", {"decoupled_weight_decay": True}),
    (torch.optim.AdamW, "adam", {}),  # AdamW's groups say decoupled_weight_decay=True
    (torch.optim.SGD, "sgd", {"differentiable": True}),
])
def test_a_torch_checkpoint_with_a_flag_the_rule_does_not_implement_is_refused(cls, name, flag):
    ps = _params()
    src = cls(ps, lr=0.01, **flag)
    ps_dst = _params()
    dst = sandbox.create(name, ps_dst, lr=0.01)
    before = [dict(g) for g in dst.param_groups]
    with pytest.raises(ValueError, match=r"(capturable|decoupled_weight_decay|differentiable)=True"):
        dst.load_state_dict(src.state_dict())
    assert [dict(g) for g in dst.param_groups] == before


# --- 4. parameter groups, complex parameters, infinite hyperparameters ------------------------
def test_a_failing_add_param_group_leaves_the_optimizer_as_it_was():
    ps = _params()
    opt = sandbox.create("adamp", ps[:1])
    before = [dict(g, params=list(g["params"])) for g in opt.param_groups]
    with pytest.raises(ValueError, match="invalid lr=-1"):
        opt.add_param_group({"params": ps[1:], "lr": -1})
    with pytest.raises(TypeError, match="group 1 param 1 .* is complex"):
        opt.add_param_group({"params": [ps[1], torch.zeros(3, dtype=torch.complex64)]})
    with pytest.raises(ValueError, match="fused=True"):
        sandbox.create("adaip", ps[:1], lr=0.1).add_param_group({"params": ps[1:], "fused": True})
    assert len(opt.param_groups) == 1 and opt.param_groups[0].keys() == before[0].keys()
    assert opt.param_groups[0]["params"][0] is before[0]["params"][0]
    opt.add_param_group({"params": ps[1:]})  # the refused parameters can still be added
    assert len(opt.param_groups) == 2


def test_complex_parameters_are_refused_with_the_way_out():
    with pytest.raises(TypeError, match=r"is complex.*view_as_real"):
        sandbox.create("adamw", [torch.zeros(3, dtype=torch.complex128, requires_grad=True)])


@pytest.mark.parametrize("key", ["lr", "weight_decay", "eps", "delta"])
@pytest.mark.parametrize("value", [float("inf"), -float("inf")])
def test_infinite_hyperparameters_are_refused(key, value):
    with pytest.raises(ValueError, match=rf"invalid {key}=-?inf: {key} must be"):
        sandbox.create("adamp", _params(), **{key: value})

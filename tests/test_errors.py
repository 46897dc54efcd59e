"""Bad input gets a clear error, and nothing changes."""
import copy

import numpy as np
import pytest
import torch

import sandbox
from sandbox import NonFiniteGradientError

from rule_kwargs import make

ALL = sandbox.available()

# (hyperparameter, bad value, text the message must contain)
BAD = [
    ("lr", -0.1, "[0, inf)"),
    ("betas", (1.0, 0.9), "[0, 1)"),
    ("betas", (0.9, -0.1), "[0, 1)"),
    ("betas", (0.9,), "pair"),
    ("eps", -1e-8, "[0, inf)"),
    ("weight_decay", -0.01, "[0, inf)"),
    ("delta", 0.0, "(0, inf)"),
    ("delta", -1.0, "(0, inf)"),
    ("wd_ratio", 1.5, "[0, 1]"),
    ("wd_ratio", -0.1, "[0, 1]"),
    ("batch_size", 0, ">= 1"),
    ("batch_size", 2.5, ">= 1"),
    ("momentum", 1.0, "[0, 1)"),
    ("lr", float("nan"), "[0, inf)"),
]


APPLICABLE = [(n, *b) for n in ALL for b in BAD if b[0] in sandbox.info(n).defaults]


@pytest.mark.parametrize("name,key,value,allowed", APPLICABLE)
def test_invalid_hyperparameter_names_itself_value_and_range(name, key, value, allowed):
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(ValueError) as e:
        make(name, [w], **{key: value})
    msg = str(e.value)
    assert key in msg and repr(value) in msg and allowed in msg, msg


@pytest.mark.parametrize("name", ALL)
def test_invalid_value_in_a_param_group_is_rejected(name):
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match="lr"):
        make(name, [{"params": [w], "lr": -1.0}])


@pytest.mark.parametrize("name", ALL)
def test_unknown_keyword_lists_close_matches(name):
    with pytest.raises(ValueError, match="unknown hyperparameter 'weight_dacay'.*'weight_decay'"):
        make(name, [torch.ones(2, requires_grad=True)], weight_dacay=0.1)


def test_required_hyperparameter_missing():
    with pytest.raises(ValueError, match="'lr' is required"):
        sandbox.create("sgdp", [torch.ones(2, requires_grad=True)])
    with pytest.raises(ValueError, match="'batch_size' is required"):
        sandbox.create("rfadamw", [torch.ones(2, requires_grad=True)])


def test_nesterov_needs_momentum_and_no_dampening():
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="nesterov"):
        sandbox.create("sgd", [w], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="nesterov"):
        sandbox.create("sgd", [w], lr=0.1, nesterov=True, momentum=0.9, dampening=0.1)


def test_bad_replica_dims_and_nonfinite_policy():
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="replica_dims"):
        sandbox.create("sgd", [{"params": [w], "replica_dims": -1}])
    with pytest.raises(ValueError, match="nonfinite"):
        sandbox.create("sgd", [w], nonfinite="maybe")


def _snapshot(opt, params):
    return [p.detach().clone() for p in params], copy.deepcopy(opt.state_dict())


def _same(opt, params, snap):
    ps, sd = snap
    assert all(torch.equal(a, b) for a, b in zip(params, ps)), "parameters changed"
    now = opt.state_dict()
    assert now["state"].keys() == sd["state"].keys(), "state keys changed"
    for i in sd["state"]:
        for k, v in sd["state"][i].items():
            assert torch.equal(now["state"][i][k], v), f"state {i}.{k} changed"


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_gradient_raises_and_changes_nothing(name, bad):
    torch.manual_seed(0)
    params = [torch.randn(4, 3, requires_grad=True), torch.randn(5, requires_grad=True)]
    opt = make(name, params, weight_decay=0.01)
    for _ in range(3):  # build some state first
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    snap = _snapshot(opt, params)
    params[0].grad = torch.randn_like(params[0])
    params[1].grad = torch.randn_like(params[1])
    params[1].grad[2] = bad
    with pytest.raises(NonFiniteGradientError, match=r"group 0 param 1 \(shape \(5,\)\)"):
        opt.step()
    _same(opt, params, snap)


@pytest.mark.parametrize("name", ["adam", "adai", "sgdp"])
def test_nonfinite_skip_policy_counts_and_changes_nothing(name):
    params = [torch.randn(4, 3, requires_grad=True)]
    opt = make(name, params, nonfinite="skip")
    params[0].grad = torch.full((4, 3), float("nan"))
    snap = _snapshot(opt, params)
    opt.step()
    _same(opt, params, snap)
    assert opt.skipped_steps == 1
    params[0].grad = torch.randn(4, 3)
    opt.step()
    assert not torch.equal(params[0], snap[0][0]) and opt.skipped_steps == 1


@pytest.mark.parametrize("name", ["adai", "adaiw", "adaip"])
def test_adai_with_all_zero_gradients_stays_finite_and_still(name):
    """Official Adai divides by the global mean v̄ = 0 here (NaN); the sandbox defines v̂/v̄ = 1."""
    params = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True),
              torch.randn(3, dtype=torch.float64, requires_grad=True)]
    before = [p.detach().clone() for p in params]
    opt = make(name, params)
    for _ in range(3):
        for p in params:
            p.grad = torch.zeros_like(p)
        opt.step()
    for p, b in zip(params, before):
        assert torch.equal(p, b)
    for s in opt.state.values():
        for v in s.values():
            assert torch.isfinite(v).all()
    beta1 = opt.last_info[params[0]]["beta1"]
    assert torch.allclose(beta1, torch.full_like(beta1, 1 - 0.1))
    # and it recovers as soon as gradients arrive
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    assert all(torch.isfinite(p).all() and not torch.equal(p, b) for p, b in zip(params, before))


@pytest.mark.parametrize("value", [True, "0.1", b"0.1", np.bool_(True), torch.tensor(True)])
def test_numbers_given_as_strings_or_booleans_are_refused(value):
    p = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"invalid lr=.*lr must be"):
        sandbox.create("adamw", [p], lr=value)
    with pytest.raises(ValueError, match=r"invalid weight_decay="):
        sandbox.create("sgd", [p], lr=0.1, weight_decay=value)


@pytest.mark.parametrize("value", [torch.tensor(0.1), np.float32(0.1), np.int64(1)])
def test_numbers_as_tensors_and_numpy_scalars_are_accepted(value):
    p = torch.zeros(3, requires_grad=True)
    sandbox.create("adamw", [p], lr=value)

"""Corrected-decay rules (AdamC/SGDC) in the training loop and in compare: the ``normalized``
flag of each tensor comes from the architecture's ground truth, never from a name or a guess."""
import pytest
import torch

import sandbox
from sandbox.probes.runs import ground_truth
from sandbox.problems import get_problem
from sandbox.training.architecture_groups import architecture_param_groups, needs_architecture
from sandbox.training.runs import train_seeds


@pytest.fixture(scope="module")
def problem():
    return get_problem("digits-bnmlp", dtype=torch.float64)


def test_only_rules_that_read_the_flag_and_were_not_given_it_need_the_architecture():
    assert needs_architecture("adamc", {}) and needs_architecture("sgdc", {"lr": 0.1})
    assert not needs_architecture("adamc", {"normalized": True})
    assert not needs_architecture("adamw", {})


def test_groups_follow_the_ground_truth(problem):
    model = problem.build(0)
    named = dict(model.named_parameters())
    truth = ground_truth(problem, model)
    groups = architecture_param_groups("adamc", {}, named, problem, model)
    assert {g["normalized"] for g in groups} == {True, False}
    for g in groups:
        ids = {id(p) for p in g["params"]}
        names = {n for n, p in named.items() if id(p) in ids}
        assert all(truth[n] == g["normalized"] for n in names)
    assert sum(len(g["params"]) for g in groups) == len(named)
    # a rule without the flag: one group, every parameter
    one = architecture_param_groups("adamw", {}, named, problem, model)
    assert len(one) == 1 and len(one[0]["params"]) == len(named)


@pytest.mark.parametrize("stacked", [True, False])
def test_train_seeds_runs_adamc_with_the_architectures_flags(problem, stacked):
    seen = {}

    def attach(opt, params, template, seeds):
        seen["flags"] = sorted(bool(g["normalized"]) for g in opt.param_groups)
        seen["replica_dims"] = {g.get("replica_dims", 0) for g in opt.param_groups}

    df = train_seeds(problem, "adamc", [0, 1], {"lr": 1e-3}, steps=4, eval_every=4,
                     stacked=stacked, attach=attach)
    assert seen["flags"] == [False, True]
    assert seen["replica_dims"] == ({1} if stacked else {0})
    assert df["valid_acc"].notna().all() and not df["diverged"].any()


def test_a_users_flag_applies_to_every_tensor(problem):
    model = problem.build(0)
    groups = architecture_param_groups("adamc", {"normalized": False}, dict(model.named_parameters()),
                                       problem, model)
    assert len(groups) == 1 and "normalized" not in groups[0]
    opt = sandbox.create("adamc", groups, lr=1e-3, normalized=False)
    assert opt.param_groups[0]["normalized"] is False

"""K seeds as one stacked model (native layers or vmap) equal K separate runs (float64, to round-off)."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

import sandbox
from sandbox.problems import get_problem
from sandbox.training import (DataOrder, StackedModels, epoch_permutations, resolve_hyperparameters,
                              stacked_step, train_seeds)

SEEDS = [0, 1, 2]
STEPS = 12
# Hyperparameters that exercise each rule's state and per-replica reductions: momentum buffers,
# weight decay (AdamP's wd_ratio is chosen per replica by its projection test), Adai's inertia.
RULES = {
    "sgd": {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
    "adamp": {"lr": 1e-3, "weight_decay": 1e-2},
    "adai": {"lr": 0.1, "weight_decay": 5e-4},
}
# float64, per tensor and replica: ‖stacked − separate‖ ≤ RTOL·‖separate‖. The differences are
# summation order (bmm vs mm), ~1e-16 relative, except where a weight's true gradient is exactly
# zero (a pixel constant over a batch feeds a BatchNorm'd unit): there the gradient is round-off
# (~1e-17) and Adam-type rules scale it by lr/eps = 1e5, so those coordinates differ by ~1e-12 in
# absolute terms while being ~0 — an element-wise relative check is meaningless for them.
# Single precision would miss this bound by orders of magnitude (~1e-7).
RTOL = 1e-9


@pytest.fixture(scope="module")
def problem():
    return get_problem("digits-bnmlp", dtype=torch.float64)


def _separate(problem, rule, hp, seeds, steps, scales=None):
    """K separate models, each with its own optimizer, on the stacked engine's batches."""
    order = DataOrder(len(problem.train[1]), problem.batch_size, seeds)
    models = [problem.build(s) for s in seeds]
    opts = [sandbox.create(rule, m.parameters(), **hp) for m in models]
    x, y = problem.train
    for t in range(steps):
        idx = order.batch(t)
        for k, (m, o) in enumerate(zip(models, opts)):
            loss = problem.loss(m(x[idx[k]]), y[idx[k]]) * (1.0 if scales is None else scales[k])
            o.zero_grad()
            loss.backward()
            o.step()
    return models, opts


def _stacked(problem, rule, hp, seeds, steps, scales=None, engine="auto"):
    order = DataOrder(len(problem.train[1]), problem.batch_size, seeds)
    stack = StackedModels([problem.build(s) for s in seeds], engine=engine)
    opt = sandbox.create(rule, stack.param_groups(), **hp)
    x, y = problem.train
    for t in range(steps):
        idx = order.batch(t)
        if scales is None:
            stacked_step(stack, opt, problem, idx)
        else:
            losses = problem.replica_losses(stack(x[idx]), y[idx]) * scales
            opt.zero_grad()
            losses.sum().backward()
            opt.step()
    return stack, opt


def _assert_same_state(stack, models):
    for name, t in {**stack.params, **stack.buffers}.items():
        expected = torch.stack([dict(m.named_parameters(), **dict(m.named_buffers()))[name].detach()
                                for m in models])
        assert t.shape == expected.shape, name
        if not t.is_floating_point():  # num_batches_tracked
            assert torch.equal(t, expected), name
            continue
        err = (t.detach() - expected).flatten(1).norm(dim=1)
        ref = expected.flatten(1).norm(dim=1)
        assert bool((err <= RTOL * ref).all()), f"{name}: relative error {(err / ref).tolist()}"


@pytest.mark.parametrize("engine", ["native", "vmap"])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_stacked_run_equals_separate_runs(problem, rule, engine):
    hp = RULES[rule]
    stack, _ = _stacked(problem, rule, hp, SEEDS, STEPS, engine=engine)
    assert stack.engine == engine
    models, _ = _separate(problem, rule, hp, SEEDS, STEPS)
    _assert_same_state(stack, models)  # weights AND BatchNorm buffers, replica by replica
    w0 = stack.params["body.0.weight"]
    assert not torch.allclose(w0[0], w0[1]), "replicas should differ (different seeds)"
    for k, m in enumerate(models):
        torch.testing.assert_close(stack.replica(k, problem.build(0)).state_dict()["body.1.running_var"],
                                   m.state_dict()["body.1.running_var"], rtol=RTOL, atol=0.0)


def test_adai_global_mean_is_per_replica(problem):
    """Replica losses scaled by 1, 30, 900: their v̄ differ by ~10^5, so a mean pooled over
    replicas would give every replica other inertias β1 = 1 − β0·v̂/v̄; the stacked run still
    equals the separate runs, which each see only their own v̄."""
    scales = torch.tensor([1.0, 30.0, 900.0], dtype=torch.float64)
    hp = RULES["adai"]
    stack, opt = _stacked(problem, "adai", hp, SEEDS, 10, scales)
    models, opts = _separate(problem, "adai", hp, SEEDS, 10, scales.tolist())
    _assert_same_state(stack, models)
    # the test discriminates: the per-replica means of v really are far apart
    v_sum = sum(opt.state[p]["exp_avg_sq"].flatten(1).sum(1) for p in stack.parameters())
    v_bar = v_sum / sum(p[0].numel() for p in stack.parameters())
    assert float(v_bar.max() / v_bar.min()) > 1e4
    for k in range(3):  # and each equals the separate run's own global mean
        own = sum(o.state[p]["exp_avg_sq"].sum() for o in [opts[k]] for p in models[k].parameters())
        assert math.isclose(float(v_bar[k]), float(own) / sum(p.numel() for p in models[k].parameters()),
                            rel_tol=1e-9)


@pytest.mark.parametrize("rule", ["sgd", "adamp"])
def test_engines_give_the_same_curves(problem, rule):
    hp, _ = resolve_hyperparameters(rule, problem, RULES[rule])
    a = train_seeds(problem, rule, SEEDS, hp, steps=20, eval_every=10, stacked=True)
    b = train_seeds(problem, rule, SEEDS, hp, steps=20, eval_every=10, stacked=False)
    key = ["seed", "step"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    assert list(a["step"].unique()) == [0, 10, 20]
    cols = ["train_loss", "valid_loss", "valid_acc", "test_loss", "test_acc"]
    np.testing.assert_allclose(a[cols].to_numpy(), b[cols].to_numpy(), rtol=1e-9, atol=1e-12)
    assert not a["diverged"].any()


def test_a_diverging_seed_does_not_stop_the_others(problem):
    """One training example is NaN: exactly the seeds whose batches meet it within the budget
    diverge (a row flagged diverged, their last); the others train on, unaffected, and equal
    their separate runs."""
    import dataclasses

    seeds, steps, B = list(range(6)), 3, problem.batch_size
    x, y = problem.train
    perms = epoch_permutations(seeds, 0, len(y))
    bad = next(i for i in range(len(y))
               if 0 < sum(int((perms[k] == i).nonzero()) // B < steps for k in seeds) < len(seeds))
    meets = {s: int((perms[k] == bad).nonzero()) // B for k, s in enumerate(seeds)}
    x = x.clone()
    x[bad] = float("nan")
    poisoned = dataclasses.replace(problem, train=(x, y))
    a = train_seeds(poisoned, "sgd", seeds, {"lr": 0.05}, steps=steps, eval_every=1, stacked=True)
    b = train_seeds(poisoned, "sgd", seeds, {"lr": 0.05}, steps=steps, eval_every=1, stacked=False)
    for seed in seeds:
        rows, other = a[a["seed"] == seed], b[b["seed"] == seed]
        if meets[seed] < steps:  # diverges at the evaluation after the step that met it
            assert rows["diverged"].tolist() == [False] * (meets[seed] + 1) + [True]
            assert not np.isfinite(rows["valid_loss"].iloc[-1])
        else:
            assert not rows["diverged"].any() and rows["step"].max() == steps
            assert np.isfinite(rows[["train_loss", "valid_loss"]].iloc[1:]).all().all()
        assert rows["diverged"].tolist() == other["diverged"].tolist()
        np.testing.assert_allclose(rows["valid_loss"], other["valid_loss"], rtol=1e-9)


def test_data_order_rows_are_the_single_seed_orders():
    perms = epoch_permutations([5, 7, 11], epoch=3, n=100)
    for k, s in enumerate([5, 7, 11]):
        assert torch.equal(perms[k], epoch_permutations([s], 3, 100)[0])
        assert torch.equal(perms[k].sort().values, torch.arange(100))
    assert not torch.equal(perms[0], epoch_permutations([5], 4, 100)[0])  # epochs differ
    order = DataOrder(100, 30, [5])
    assert order.steps_per_epoch == 3  # the partial batch is dropped
    assert torch.equal(order.batch(3)[0], epoch_permutations([5], 1, 100)[0][:30])


def test_stacked_models_reject_mixed_architectures(problem):
    with pytest.raises(ValueError, match="one architecture"):
        StackedModels([problem.build(0), torch.nn.Linear(2, 2)])


def test_benchmark_reports_the_ratio():
    from sandbox.benchmarks.stacked_seeds import COLUMNS, stacked_seeds_benchmark

    df = stacked_seeds_benchmark(quick=True, K=4, threads=1)
    assert list(df.columns) == list(COLUMNS) and len(df) == 1
    row = df.iloc[0]
    assert row["stacked_ms_per_step"] > 0 and row["loop_ms_per_step"] > 0
    assert math.isclose(row["speedup"], row["loop_ms_per_step"] / row["stacked_ms_per_step"])
    assert isinstance(df, pd.DataFrame)


@pytest.mark.gpu
def test_stacked_equals_separate_on_cuda():
    p = get_problem("digits-bnmlp", device="cuda", size="cpu", dtype=torch.float64)
    stack, _ = _stacked(p, "adamp", RULES["adamp"], SEEDS, 10)
    models, _ = _separate(p, "adamp", RULES["adamp"], SEEDS, 10)
    _assert_same_state(stack, models)


def test_benchmark_rows_per_problem_and_rule():
    from sandbox.benchmarks.stacked_seeds import stacked_seeds_benchmark

    df = stacked_seeds_benchmark(quick=True, K=2, threads=1, problem=("digits-bnmlp", "teacher-student"))
    assert list(df["problem"]) == ["digits-bnmlp", "teacher-student"]


@pytest.mark.parametrize("arg", ["digts-bnmlp", ",", "digits-bnmlp,nope"])
def test_benchmark_cli_refuses_unknown_problems(arg, capsys):
    from sandbox.benchmarks.stacked_seeds import main

    with pytest.raises(SystemExit) as e:
        main(["--problem", arg, "--out", "/nonexistent/never-written.csv"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err

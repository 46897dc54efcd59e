"""BN-net runs under an lr schedule (sandbox.probes.runs: ``lr_schedule``, ``normalised_groups``)
and the per-layer side-by-side of sandbox.experiments.schedule_nets (a few hundred steps each)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import sandbox
from sandbox.experiments import schedule_nets as sn
from sandbox.probes.architecture import scale_invariance_ground_truth
from sandbox.probes.runs import param_groups, probed_run
from sandbox.problems import get_problem
from theory.schedules import schedule

HP = {"weight_decay": 0.5, "betas": (0.9, 0.99)}


@pytest.fixture(scope="module")
def problem():
    return get_problem("digits-bnmlp")


def test_lr_follows_the_schedule_in_the_recorded_column(problem):
    sched = schedule("warmup_cosine", 120, 1e-2, warmup=20)
    df = probed_run(problem, "adamw", HP, 120, schedule=7, lr_schedule=sched,
                    normalised_groups=True, decay_vectors=False, threads=1)
    steps = np.sort(df["step"].unique())
    assert steps[-1] == 119 - 119 % 7 and len(steps) == 18
    per_step = df.groupby("step")["lr"].agg(["min", "max"])
    np.testing.assert_array_equal(per_step["min"].to_numpy(), per_step["max"].to_numpy())
    np.testing.assert_allclose(per_step["min"].to_numpy(), sched.gamma[steps], rtol=0, atol=0)
    assert per_step["min"].iloc[0] < 1e-2 / 10 < per_step["min"].max()  # the warm-up is there


def test_lr_schedule_refuses_a_short_schedule_or_a_conflicting_lr(problem):
    with pytest.raises(ValueError, match="one lr per step"):
        probed_run(problem, "adamw", HP, 50, lr_schedule=[1e-3] * 10)
    with pytest.raises(ValueError, match="peak"):
        probed_run(problem, "adamw", {**HP, "lr": 0.5}, 10, lr_schedule=[1e-3] * 10)


def test_adamc_without_normalised_groups_refuses_naming_normalized(problem):
    for rule in ("adamc", "sgdc"):
        with pytest.raises(ValueError, match="normalized"):
            probed_run(problem, rule, {"weight_decay": 0.1}, 5, lr_schedule=[1e-3] * 5,
                       normalised_groups=False)


def test_the_probes_run_adamc_unchanged_with_the_architectures_groups(problem):
    """By default the groups come from the architecture exactly when the rule needs them."""
    df = probed_run(problem, "adamc", {"weight_decay": 0.1, "lr": 1e-3}, 5, schedule=1)
    assert len(df) and df["delta"].notna().all()


def test_groups_carry_the_architectures_normalised_flag_and_vectors_lose_decay(problem):
    model = problem.build(0)
    truth = {n: v.scale_invariant for n, v in scale_invariance_ground_truth(model).items()}
    names = {id(p): n for n, p in model.named_parameters()}
    groups = param_groups(model, "adamc", HP, normalised=True, decay_vectors=False)
    seen = set()
    for g in groups:
        for p in g["params"]:
            n = names[id(p)]
            seen.add(n)
            assert g["normalized"] == truth[n], n
            assert (g.get("weight_decay", HP["weight_decay"]) == 0.0) == (p.ndim < 2), n
    assert seen == set(names.values()) and any(truth.values()) and not all(truth.values())
    # a rule without the key gets the same split without it
    plain = param_groups(model, "adamw", HP, normalised=True, decay_vectors=False)
    assert [len(g["params"]) for g in plain] == [len(g["params"]) for g in groups]
    assert all("normalized" not in g for g in plain)


def test_the_corrected_decay_acts_on_the_normalised_tensors_only(problem):
    """One AdamC step at γ_t = γ_max/4 with the run's groups: correction γ_t/γ_max on the tensors
    the architecture says are normalised, 1 on the other decayed ones."""
    model = problem.build(0)
    truth = {n: v.scale_invariant for n, v in scale_invariance_ground_truth(model).items()}
    opt = sandbox.create("adamc", param_groups(model, "adamc", HP, normalised=True,
                                               decay_vectors=False), lr=1e-2, **HP)
    for g in opt.param_groups:
        g["initial_lr"], g["lr"] = 1e-2, 2.5e-3
    x, y = problem.train
    problem.loss(model(x[:64]), y[:64]).backward()
    opt.step()
    for name, p in model.named_parameters():
        info = opt.last_info.get(p, {})
        if p.ndim < 2:  # no decay: the stage records nothing
            assert "decay_correction" not in info, name
            continue
        c = float(torch.as_tensor(info["decay_correction"]).reshape(-1)[0])
        assert c == pytest.approx(0.25 if truth[name] else 1.0), name


def test_schedule_nets_table_resumes_from_its_csvs(tmp_path, monkeypatch):
    kw = dict(rules=("adamw", "adamc"), seeds=(0,), steps=150, every=10)
    first = sn.run_schedule_nets(tmp_path, **kw)
    assert set(first["rule"]) == {"adamw", "adamc"}
    assert list(first.columns) == list(sn.COLUMNS)
    assert set(first["layer"]) == {"body.0.weight", "body.3.weight"}  # the ground truth's layers
    assert len(list(tmp_path.glob("*.csv"))) == 2 and not list(tmp_path.glob("*.partial.csv"))
    import sandbox.probes.runs as runs

    def no_training(*a, **k):
        raise AssertionError("a saved run was trained again")

    monkeypatch.setattr(runs, "_train", no_training)
    again = sn.run_schedule_nets(tmp_path, **kw)
    pd.testing.assert_frame_equal(first, again, check_dtype=False)
    with pytest.raises(AssertionError, match="trained again"):  # another setting: a new run
        sn.run_schedule_nets(tmp_path, **{**kw, "steps": 160})


def test_late_rise_of_a_smoothed_series():
    steps = np.arange(0, 1000, 10)
    lr = schedule("cosine", 1000, 1e-2).gamma[steps]
    rows = []
    for rule, ratio in (("flat", np.full(len(steps), 0.03)),
                        ("rising", 0.03 * np.sqrt(1e-2 / np.maximum(lr, 2.5e-3)))):
        rows.append(pd.DataFrame({"rule": rule, "seed": 0, "layer": "w", "step": steps, "lr": lr,
                                  "norm": 1.0, "delta": 0.0, "grad_norm": ratio,
                                  "grad_ratio": ratio}))
    rises = sn.late_rises(pd.concat(rows), window=50).set_index("rule")["late_rise"]
    assert rises["flat"] == pytest.approx(1.0)
    # sqrt(1e-2/2.5e-3) at the end over the first full window's rms (lr a little below its peak)
    first = np.sqrt(np.mean(rows[1]["grad_ratio"].to_numpy()[:5] ** 2))
    assert rises["rising"] == pytest.approx(0.06 / first, rel=1e-9)
    assert 1.99 < rises["rising"] < 2.0
    summary = sn.late_rise_summary(sn.late_rises(pd.concat(rows)).assign(seed=0))
    assert set(summary["rule"]) == {"flat", "rising"} and (summary["seeds"] == 1).all()

"""Issue 17 end to end on tiny budgets: time to target at every checked step, the defaults' tuning
rule, verdicts for every pair, hyperparameters listed, performance profiles over three problems,
the summary figure, one colour per rule, ``python -m sandbox problems``. No wall-clock asserts."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from sandbox.cli import compare_cmd
from sandbox.cli.main import main
from sandbox.compare import config as compare_config
from sandbox.compare.palette import rule_colors
from sandbox.compare.protocol import LR_RULE
from sandbox.problems import get_problem
from sandbox.training import train_seeds

pytestmark = pytest.mark.usefixtures("restore_threads")  # tests/conftest.py


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def _run(args, capsys):
    rc = main(args)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_time_to_target_is_the_first_step_reaching_it_and_checks_change_nothing():
    p = get_problem("digits-bnmlp", dtype=torch.float64)
    found = []
    tracked = train_seeds(p, "adamw", [0, 1, 2], {}, steps=30, eval_every=1, target=0.5,
                          target_every=1, on_target=found.append)
    plain = train_seeds(p, "adamw", [0, 1, 2], {}, steps=30, eval_every=1)
    # evaluation-mode checks leave training alone: the same curves, bit for bit
    pd.testing.assert_frame_equal(tracked.drop(columns="wall_s"), plain.drop(columns="wall_s"))
    rows = found[0].set_index("seed")
    for seed, c in plain.groupby("seed"):
        hit = c.loc[c["valid_acc"] >= 0.5, "step"]
        assert rows.loc[seed, "steps_to_target"] == (hit.iloc[0] if len(hit) else np.nan)
        assert rows.loc[seed, "best_acc"] >= c.loc[c["step"] <= rows.loc[seed, "steps_to_target"],
                                                   "valid_acc"].max() - 1e-12
    assert (rows["target_every"] == 1).all() and (rows["target_split"] == "valid").all()
    assert (rows["train_s_to_target"] <= rows["train_s"]).all()


def test_checks_every_few_steps_and_a_target_never_reached():
    p = get_problem("digits-bnmlp")
    found = []
    train_seeds(p, "sgd", [0, 1], {}, steps=12, target=0.99, target_every=4, on_target=found.append,
                stacked=False)
    rows = pd.concat(found)
    assert rows["steps_to_target"].isna().all() and (rows["best_acc"] < 0.99).all()
    assert (rows["best_step"] % 4 == 0).all() or (rows["best_step"] == 12).all()


def test_default_check_interval_keeps_checks_at_about_half_a_step():
    for name in ("digits-bnmlp", "teacher-student-large"):
        p = get_problem(name)
        assert len(p.valid[1]) <= 1.5 * p.batch_size * p.target_every
        assert p.target_every == 1 or len(p.valid[1]) > 1.5 * p.batch_size * (p.target_every - 1)


def test_defaults_tune_an_lr_without_a_published_default_and_say_so(tmp_path, capsys):
    out = tmp_path / "d"
    rc, stdout, err = _run(["compare", "--problem", "digits-bnmlp", "--defaults", "--quiet",
                            "--optimizers", "sgd,sgdp,adamw", "--seeds", "3", "--epochs", "0.5",
                            "--lr-grid", "0.01,0.1", "--no-figures", "--out", str(out)], capsys)
    assert rc == 0, err
    # the rule is printed when it runs, the best lr is at the top of this grid: flagged
    assert "sgdp: lr has no published default; tuning rule (seed 0 on the grid" in err
    assert "TOP of its grid" in stdout and "extend --lr-grid upward" in stdout
    runs = {p.name for p in (out / "runs").glob("*.json")}
    assert {"tune-sgdp-lr0.01-seed0.json", "tune-sgdp-lr0.1-seed0.json"} <= runs
    assert not any(n.startswith("tune-sgd-") or n.startswith("tune-adamw") for n in runs)
    rec = json.loads((out / "runs" / "defaults-sgdp-lr0.1-seed2.json").read_text())
    assert rec["hp"]["lr"] == [0.1, LR_RULE] and rec["target"]["target_split"] == "valid"
    # every pair has a verdict, an interval and a detectable difference, for both metrics
    pairs = pd.read_csv(out / "pairs.csv")
    assert len(pairs) == 6 and pairs["verdict"].str.len().gt(0).all()
    assert pairs[["ci_low", "ci_high", "detectable"]].notna().all().all()
    for a, b in (("sgd", "sgdp"), ("sgd", "adamw"), ("sgdp", "adamw")):
        assert f"{a} − {b}" in stdout
    # every hyperparameter each rule ran with, with provenance
    hp = pd.read_csv(out / "hyperparameters.csv")
    assert set(hp["rule"]) == {"sgd", "sgdp", "adamw"}
    assert {"lr", "momentum", "weight_decay"} <= set(hp[hp["rule"] == "sgd"]["name"])
    assert "betas=(0.9, 0.999)" in stdout and f"[lr: {LR_RULE}]" in stdout
    summary = pd.read_csv(out / "summary.csv")
    assert {"test_acc_sd", "steps_to_target", "train_s_to_target", "best_valid_acc",
            "hyperparameters", "lr_source"} <= set(summary.columns)


def test_performance_profiles_over_three_problems(tmp_path, capsys):
    out = tmp_path / "prof"
    rc, stdout, err = _run(["compare", "--problems", "digits-bnmlp,teacher-student-bn,mnist1d-bncnn",
                            "--defaults", "--quiet", "--optimizers", "sgd,adamw", "--seeds", "2",
                            "--epochs", "0.3", "--probe-every", "0", "--out", str(out)], capsys)
    assert rc == 0, err
    table = pd.read_csv(out / "profile.csv")
    assert set(table["problem"]) == {"digits-bnmlp", "teacher-student-bn", "mnist1d-bncnn"}
    assert set(table["rule"]) == {"sgd", "adamw"} and len(table) == 6
    assert (out / "figures" / "performance_profile.png").stat().st_size > 0
    for name in ("digits-bnmlp", "teacher-student-bn", "mnist1d-bncnn"):
        assert (out / name / "summary.csv").exists() and f"== {name}" in stdout
    # sgd at lr 1e-3 for a third of an epoch reaches no target: "not reached" with its best
    assert "not reached (best" in stdout and "performance profile over 3 problem(s)" in stdout


def test_summary_figure_and_one_colour_per_rule(tmp_path, capsys):
    out = tmp_path / "fig"
    rc, _, err = _run(["compare", "--problem", "digits-bnmlp", "--defaults", "--quiet",
                       "--optimizers", "adamw,adamp", "--seeds", "2", "--epochs", "1",
                       "--hp", "adamw.weight_decay=0.01", "--out", str(out)], capsys)
    assert rc == 0, err
    assert (out / "figures" / "summary.png").stat().st_size > 0
    # a rule's colour does not depend on which other rules are drawn, nor on their order
    both, one = rule_colors(["adamw", "adamp"]), rule_colors(["adamp", "sgd"])
    assert both["adamp"] == one["adamp"] and both["adamw"] != both["adamp"]


def test_the_clis_named_defaults_are_the_librarys():
    assert compare_cmd.DEFAULT_SEEDS == compare_config.DEFAULT_SEEDS
    assert compare_cmd.DEFAULT_PROBLEM == compare_config.DEFAULT_PROBLEM
    assert compare_config.CompareConfig().problem == compare_config.DEFAULT_PROBLEM


def test_problems_lists_budget_target_and_spread(capsys):
    rc, stdout, _ = _run(["problems"], capsys)
    assert rc == 0
    assert "teacher-student-large  [compare's default]" in stdout
    assert "one test example = 0.0061 pp" in stdout and "checked every 6 step(s)" in stdout
    assert "640 steps" in stdout


def test_problems_measure_refuses_unknown_names_in_one_line(capsys):
    rc, _, err = _run(["problems", "--measure", "digits-bnmpl"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "did you mean 'digits-bnmlp'" in err

"""The ``schedules`` claim family at test size: rules selected by traits, the late rise and its
absence under corrected decay, Defazio's steady state, REPORTED rows where the theory does not
cover the rule or the schedule, and that a wrong prediction fails through the same code."""
import dataclasses

import numpy as np
import pandas as pd
import pytest

import sandbox
from family_runs import assert_no_fail, run_family
from sandbox.verify.base import VerifyConfig
from sandbox.verify.families import schedules as fam

SMALL = {"steps": 1200, "replicas": 128, "all_rules": False, "long": False}


@pytest.fixture(autouse=True)
def _small(monkeypatch):
    monkeypatch.setattr(fam, "sizes", lambda cfg: dict(SMALL))


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return tmp_path_factory.mktemp("schedules")


def test_quick_jobs_are_one_covered_rule_per_signature():
    rules = [j["rule"] for j in fam.jobs(VerifyConfig(quick=True))]
    assert {"adamw", "adamp", "adamc", "sgdc", "lion"} <= set(rules)
    # no rule without a schedule theory in quick mode, and no signature twice
    assert not {"lamb", "lars", "rvadamw", "adai", "rfadamw", "adam"} & set(rules)
    sigs = [fam._signature(r) for r in rules]
    assert len(sigs) == len(set(sigs))


def test_full_jobs_report_rules_the_theory_does_not_cover(monkeypatch):
    monkeypatch.setattr(fam, "sizes", lambda cfg: dict(SMALL, all_rules=True))
    jobs = {j["rule"]: j for j in fam.jobs(VerifyConfig(quick=False))}
    assert set(jobs) == set(sandbox.available())
    for name in ("lamb", "rvadamw", "adai", "rfadamw"):
        assert jobs[name]["traj"] is None and jobs[name]["why"]
    assert jobs["adamc"]["traj"] is not None and jobs["lion"]["traj"] is not None


@pytest.mark.parametrize("rule", ["adamw", "adamc"])
def test_trajectories_and_late_rise_pass(shared, rule):
    rows = run_family(fam, shared, "schedule.[!n]*", [rule])  # not the nets rows (full mode's)
    rows = rows[rows["rule"] == rule]
    assert_no_fail(rows)
    got = set(rows["claim"])
    assert set(fam.TRAJECTORY) | {"schedule.late_rise"} <= got
    rise = rows[rows["claim"] == "schedule.late_rise"].iloc[0]
    if rule == "adamc":  # Defazio: flat under the corrected decay, and Δ_t ∝ γ_t
        assert "schedule.corrected_delta" in got
        assert rise["predicted"] < 1.05 and rise["measured"] < 1.1
    else:
        assert "schedule.corrected_delta" not in got
        assert rise["predicted"] > 1.2 and rise["measured"] > 1.2


def test_sgd_steady_state_is_defazios_ratio(shared):
    rows = run_family(fam, shared, "schedule.sgd_steady", ["sgd"])
    r = rows.iloc[0]
    assert r["predicted"] == pytest.approx(np.sqrt(2 * 0.01 / 0.1))
    assert r["verdict"] == "PASS"


def test_onecycle_is_reported_without_prediction(shared):
    rows = run_family(fam, shared, "schedule.not_covered", ["adamc"])
    assert (rows["verdict"] == "REPORTED").all() and rows["predicted"].isna().all()
    assert rows["note"].str.contains("OneCycle").all()


def test_a_wrong_prediction_fails(tmp_path, monkeypatch):
    """The same rows with the predicted norm off by 20%: the norm trajectory claim FAILS."""
    real = fam.predict_schedule

    def off(*a, **k):
        t = real(*a, **k)
        return dataclasses.replace(t, r=1.2 * t.r)
    monkeypatch.setattr(fam, "predict_schedule", off)
    rows = run_family(fam, tmp_path, "schedule.trajectory.norm", ["adamw"])
    assert (rows["verdict"] == "FAIL").all()


def test_the_long_run_claim_picks_the_projected_adam_rule():
    assert fam.long_run_rule() == "adamp"


def test_net_rows_predict_per_layer_given_the_measured_gradient(tmp_path):
    """The BN-net rows on a short run: one row per claim and scale-invariant layer; the corrected
    rule's constant-G prediction is flat (1), its prediction given the measured G is not exactly
    1 (G changes), and the constant-G form is REPORTED whatever the numbers."""
    from sandbox.experiments.schedule_nets import net_schedule, run_schedule_nets
    from sandbox.verify.families import schedules_nets as sn

    assert set(sn.net_rules()) >= {"adamw", "adamc", "adamp", "rvadamw"}
    steps = 700
    table = run_schedule_nets(tmp_path, rules=("adamc", "rvadamw"), seeds=(0, 1), steps=steps)
    rows = pd.DataFrame(sn.table_rows(table, net_schedule(steps=steps)))
    layers = table["layer"].unique()
    assert len(rows) == 3 * 2 * len(layers)
    const = rows[(rows["rule"] == "adamc") & (rows["claim"] == "schedule.nets.late_rise_constant_g")]
    assert (const["verdict"] == "REPORTED").all()
    assert np.allclose(const["predicted"], 1.0, atol=0.02)
    given = rows[(rows["rule"] == "adamc") & (rows["claim"] == "schedule.nets.late_rise")]
    assert given["predicted"].notna().all() and (given["verdict"] != "REPORTED").all()
    assert (rows["rule"] == "adamc").sum() == 3 * len(layers)
    rv = rows[rows["rule"] == "rvadamw"]
    assert (rv["verdict"] == "REPORTED").all() and rv["note"].str.contains("rotation").all()

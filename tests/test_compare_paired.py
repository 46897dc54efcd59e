"""Paired comparisons: the t interval and test, the detectable difference (power), Holm, the verdicts;
performance profiles; the edge-of-grid note. Pure statistics: no training."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sandbox.compare.paired import (detectable_difference, detectable_difference_approx, format_pairs,
                                    holm, paired_table, paired_test, power_of, seeds_needed)
from sandbox.compare.profile import format_profile, profile_curve, profile_points, profile_table
from sandbox.compare.protocol import edge_note


def test_paired_test_is_scipys_paired_t_test_with_its_interval():
    rng = np.random.default_rng(0)
    a = rng.normal(0.80, 0.01, 12)
    b = a - rng.normal(0.004, 0.003, 12)
    r = paired_test(a, b, names=("adamp", "adamw"))
    ref = stats.ttest_rel(a, b)
    d = a - b
    half = stats.t.ppf(0.975, 11) * d.std(ddof=1) / math.sqrt(12)
    assert r["n"] == 12 and r["test"] == "paired t"
    assert r["t"] == pytest.approx(ref.statistic, rel=1e-12) and r["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-12)
    assert r["verdict"] == "adamp better than adamw"
    # the interval excludes 0 exactly when p < 0.05
    assert (r["ci_low"] > 0) == (r["p"] < 0.05)


def test_verdict_direction_follows_the_metric():
    a, b = np.array([0.50, 0.52, 0.51, 0.53]), np.array([0.60, 0.61, 0.62, 0.615])
    assert paired_test(a, b, higher_is_better=True, names=("x", "y"))["verdict"] == "y better than x"
    # a lower loss is better
    assert paired_test(a, b, higher_is_better=False, names=("x", "y"))["verdict"] == "x better than y"


def test_not_distinguishable_names_the_number_of_seeds_and_gives_the_detectable_difference():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, 5)
    b = a + rng.normal(0, 1, 5)
    r = paired_test(a, b)
    assert r["p"] >= 0.05 and r["verdict"] == "not distinguishable with 5 seeds"
    assert r["detectable"] == pytest.approx(detectable_difference(r["sd_diff"], 5))


def test_few_seeds():
    one = paired_test([0.9], [0.8])
    assert one["verdict"] == "cannot be tested with 1 seed (needs ≥ 2)" and math.isnan(one["p"])
    assert paired_test([0.9, 0.8], [0.9, 0.8])["verdict"] == "identical on all 2 seeds"
    # the same difference on every seed: the t statistic is undefined, the exact sign-flip test
    # decides (p = 2/2^n), and no detectable difference is claimed
    three = paired_test([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])
    assert three["p"] == pytest.approx(0.25) and three["verdict"].startswith("not distinguishable with 3")
    assert "sign-flip" in three["verdict"] and math.isnan(three["detectable"])
    seven = paired_test(np.arange(7) + 1.0, np.arange(7.0), names=("a", "b"))
    assert seven["p"] == pytest.approx(2 / 2 ** 7) and seven["verdict"].startswith("a better than b")
    # non-finite values (a diverged run) leave their seed out
    r = paired_test([0.9, np.nan, 0.8, 0.85], [0.8, 0.7, 0.7, 0.8])
    assert r["n"] == 3 and r["excluded"] == 1


@pytest.mark.parametrize("n", [2, 3, 5, 10, 39, 100])
def test_detectable_difference_has_the_stated_power(n):
    d = detectable_difference(0.7, n)
    assert power_of(d, 0.7, n) == pytest.approx(0.80, abs=1e-6)
    assert power_of(0.9 * d, 0.7, n) < 0.80 < power_of(1.1 * d, 0.7, n)
    if n >= 5:  # the textbook (t + t)·s/√n form, as the docstring says
        assert detectable_difference_approx(0.7, n) == pytest.approx(d, rel=0.02)


def test_power_by_simulation():
    """A true difference equal to the detectable one is found in ~80% of simulated runs."""
    rng = np.random.default_rng(2)
    n, sd = 10, 1.0
    delta = detectable_difference(sd, n)
    d = rng.normal(delta, sd, size=(20000, n))
    t = d.mean(axis=1) * math.sqrt(n) / d.std(axis=1, ddof=1)
    rate = float((np.abs(t) > stats.t.ppf(0.975, n - 1)).mean())
    assert rate == pytest.approx(0.80, abs=3 * math.sqrt(0.8 * 0.2 / 20000) + 0.002)


def test_seeds_needed_is_the_smallest_n():
    for sd, target in [(1.085, 0.5), (0.3, 0.5), (0.5, 0.5)]:
        n = seeds_needed(sd, target)
        assert detectable_difference(sd, n) <= target < detectable_difference(sd, n - 1)
    assert seeds_needed(0.01, 0.5) == 2
    with pytest.raises(ValueError):
        seeds_needed(1.0, 0.0)


def test_holm():
    adj = holm([0.01, 0.04, 0.03, np.nan, 0.5])
    # sorted 0.01, 0.03, 0.04, 0.5 with m = 4: 0.04, 0.09, max(0.09, 0.08), max(.., 0.5)
    assert adj[[0, 2, 1, 4]] == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert math.isnan(adj[3])


def _runs():
    rows = []
    rng = np.random.default_rng(3)
    base = rng.normal(0.8, 0.01, 6)
    for rule, shift in (("sgd", -0.3), ("sgdp", 0.0), ("adamp", 0.002)):
        for s in range(6):
            acc = base[s] + shift + rng.normal(0, 0.001)
            diverged = rule == "sgd" and s == 5
            rows.append({"rule": rule, "seed": s, "status": "diverged" if diverged else "finished",
                         "test_acc": np.nan if diverged else acc,
                         "test_loss": np.nan if diverged else 1 - acc})
    return pd.DataFrame(rows)


def test_paired_table_has_every_pair_of_every_metric_in_rule_order():
    table = paired_table(_runs(), ["sgd", "sgdp", "adamp"])
    assert table[["metric", "a", "b"]].values.tolist() == [
        ["test_acc", "sgd", "sgdp"], ["test_acc", "sgd", "adamp"], ["test_acc", "sgdp", "adamp"],
        ["test_loss", "sgd", "sgdp"], ["test_loss", "sgd", "adamp"], ["test_loss", "sgdp", "adamp"]]
    sgd = table[(table["a"] == "sgd") & (table["metric"] == "test_acc")]
    assert (sgd["n"] == 5).all() and (sgd["excluded"] == 1).all()
    assert (sgd["verdict"] == ["sgdp better than sgd", "adamp better than sgd"]).all()
    assert (table["p_holm"] >= table["p"]).all()
    text = format_pairs(table)
    assert "sgd − sgdp" in text and "1 seed(s) left out: diverged" in text and "detectable" in text


def test_profile_ratios_and_curve():
    summaries = {
        "p1": pd.DataFrame({"rule": ["a", "b", "c"], "steps_to_target": [100.0, 200.0, math.inf],
                            "train_s_to_target": [1.0, 1.0, math.inf], "target_acc": 0.9,
                            "reached_target": ["3/3", "3/3", "0/3"], "best_valid_acc": [.95, .93, .5]}),
        "p2": pd.DataFrame({"rule": ["a", "b", "c"], "steps_to_target": [300.0, 100.0, 150.0],
                            "train_s_to_target": [3.0, 1.0, 2.0], "target_acc": 0.8,
                            "reached_target": ["3/3"] * 3, "best_valid_acc": [.9, .9, .9]}),
        "p3": pd.DataFrame({"rule": ["a", "b", "c"], "steps_to_target": [math.inf] * 3,
                            "train_s_to_target": [math.inf] * 3, "target_acc": 0.99,
                            "reached_target": ["0/3"] * 3, "best_valid_acc": [.9, .95, .8]})}
    t = profile_table(summaries)
    r = t.set_index(["problem", "rule"])["ratio_steps_to_target"]
    assert r["p1", "a"] == 1 and r["p1", "b"] == 2 and math.isinf(r["p1", "c"])
    assert r["p2", "a"] == 3 and r["p2", "c"] == 1.5 and all(math.isinf(r["p3", x]) for x in "abc")
    # rho(tau) = fraction of the 3 problems with ratio <= tau
    assert profile_curve(r.xs("a", level="rule"), [1, 2.9, 3, 1e9]).tolist() == pytest.approx(
        [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert profile_curve(r.xs("c", level="rule"), [1, 1.5]).tolist() == pytest.approx([0, 1 / 3])
    pts = profile_points(t)
    assert set(pts["rule"]) == {"a", "b", "c"} and (pts["rho"] <= 1).all()
    text = format_profile(t)
    assert "not reached (best 0.5000" in text and "ρ(1)" in text


def test_a_best_lr_at_the_edge_of_the_grid_is_flagged():
    grid = [1e-3, 1e-2, 1e-1, 1.0]
    assert "TOP of its grid" in edge_note(1.0, grid) and "extend --lr-grid upward" in edge_note(1.0, grid)
    assert "BOTTOM of its grid" in edge_note(1e-3, grid)
    assert edge_note(1e-2, grid) is None and edge_note(0.1, [0.1]) is None

"""The ``nets`` claim family: estimators, the matched start, one real equilibrium check, and the
family's plumbing (rows, files, resume, figures)."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import sandbox
from sandbox.probes.analysis import detection_scores, log_binned, loglog_slope, window_rms
from sandbox.probes.runs import probed_run, rescale_equivariant
from sandbox.verify.base import ROW_COLUMNS, VERDICTS, VerifyConfig
from sandbox.verify.families import nets


def test_log_binned_slope_recovers_a_power_law():
    rng = np.random.default_rng(0)
    t = np.arange(1, 20001, dtype=float)
    y = 0.3 * t ** -0.5 * np.exp(0.3 * rng.standard_normal(t.size))  # noisy per-step values
    tb, yb = log_binned(t, y, 100, 20000, bins=20)
    assert len(tb) == 20 and np.all(np.diff(tb) > 0)
    slope, se = loglog_slope(tb, yb)
    assert abs(slope + 0.5) < 4 * se + 1e-3 and se < 0.01
    tb2, yb2 = log_binned(t, t ** -0.25, 100, 20000)
    assert loglog_slope(tb2, yb2)[0] == pytest.approx(-0.25, abs=2e-3)
    assert math.isnan(loglog_slope([1, 2], [1, 2])[0])


def test_detection_scores_and_window_rms():
    df = pd.DataFrame({"step": [0, 0, 1, 1, 2, 2], "layer": ["a", "b"] * 3,
                       "scale_invariant": [True, False] * 3,
                       "detected": pd.array([1, 0, 0, 2, 2, 0], dtype="Int64"),
                       "delta": [3.0, 1.0, 4.0, 1.0, 0.0, 1.0]})
    s = detection_scores(df)
    assert (s["tp"], s["fp"], s["fn"]) == (2, 1, 1)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    r = window_rms(df, 0, 2)
    assert r["a"] == pytest.approx(5 / math.sqrt(2)) and r["b"] == pytest.approx(1.0)


def test_rate_start_time_is_the_first_time_inside_the_regime():
    from theory.homogeneity import angular_step_asymptote
    from theory_rule_table import traits_for

    for rule, hp in (("sgd", dict(momentum=0.9)), ("adamw", {})):
        tr = traits_for(rule, **hp)
        t0 = nets.start_time(tr)
        bound = nets.REGIME * (1 - tr.beta)
        assert angular_step_asymptote(t0, tr) <= bound < angular_step_asymptote(t0 - 1, tr)
    assert nets.start_time(traits_for("sgd", momentum=0.9)) == 117
    assert nets.start_time(traits_for("adamp")) == 20 and nets.start_time(traits_for("sgd")) == 20


class InvariantNet(nn.Module):
    """Only the BN-fed weight trains (the rest is frozen) and BatchNorm's eps is ~0 (eps/variance
    breaks invariance at O(1e-5) otherwise): the rescale must be an exact symmetry."""

    def __init__(self):
        super().__init__()
        self.fc, self.bn, self.out = nn.Linear(6, 8, bias=False), nn.BatchNorm1d(8, eps=1e-30), nn.Linear(8, 3)

    def forward(self, x):
        return self.out(F.relu(self.bn(self.fc(x))))


@pytest.mark.parametrize("rule,hp,power", [("sgd", dict(momentum=0.9), 2), ("adamw", dict(weight_decay=0.0, eps=1e-30), 1)])
def test_equivariant_rescale_maps_trajectories_exactly(rule, hp, power):
    """w ← c·w with the state rescaled and lr ← lr·c^(k+1) gives c × the original trajectory
    (Adam with eps ~ 0: its eps is the one term that is not homogeneous)."""
    torch.manual_seed(0)
    base = InvariantNet().double()
    for p in (*base.out.parameters(), *base.bn.parameters()):
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(16, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g))
            for _ in range(12)]
    lr, c = 0.05, 0.37
    nets_, opts = [], []
    for _ in range(2):
        net = InvariantNet().double()
        net.load_state_dict(base.state_dict())
        for p in (*net.out.parameters(), *net.bn.parameters()):
            p.requires_grad_(False)
        nets_.append(net)
        opts.append(sandbox.create(rule, [net.fc.weight], lr=lr, **hp))
    for t, (x, y) in enumerate(data):
        if t == 5:
            rescale_equivariant(opts[1], nets_[1].fc.weight, c)
            opts[1].param_groups[0]["lr"] = lr * c ** power
        for net, opt in zip(nets_, opts):
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
    w0, w1 = nets_[0].fc.weight.detach(), nets_[1].fc.weight.detach()
    torch.testing.assert_close(w1, c * w0, rtol=1e-9, atol=1e-12)


def test_sgd_equilibrium_per_layer_within_tolerance():
    """The cheapest real-net check (τ = 50 steps): SGD with momentum and L2 on digits-bnmlp."""
    from theory.equilibrium import equilibrium_angular_step, time_to_equilibrium
    from theory_rule_table import traits_for

    from sandbox.problems import get_problem

    hp = nets.EQUILIBRIUM["sgd"]
    tr = traits_for("sgd", **hp)
    pred = equilibrium_angular_step(hp["lr"], hp["weight_decay"], tr)
    tau = time_to_equilibrium(hp["lr"], hp["weight_decay"], tr)
    start = nets.BURN_IN + int(3 * tau)
    stop = start + 300
    df = probed_run(get_problem("digits-bnmlp"), "sgd", hp, stop, schedule=5,
                    burn_in=nets.BURN_IN, rescale_to=pred, decay_vectors=False)
    measured = window_rms(df[df.scale_invariant], start, stop)
    assert len(measured) == 2
    for layer, m in measured.items():
        assert abs(m / pred - 1) <= nets.EQ_TOLERANCE, (layer, m, pred)
    assert (df[df.scale_invariant].detected > 0).all()


def tiny_plan(cfg):
    return dict(seeds=[0], warm=1, window=0, min_window=20, rate_rules=("adamp",), rate_steps=60,
                bf16_rules=("sgd",), bf16_steps=20)


def test_family_rows_files_resume_and_figures(tmp_path, monkeypatch):
    monkeypatch.setattr(nets, "_plan", tiny_plan)
    monkeypatch.setattr(nets, "EQUILIBRIUM", {"sgd": nets.EQUILIBRIUM["sgd"]})
    cfg = VerifyConfig(quick=True, out=tmp_path)
    assert len(nets.plan(cfg)) == 3
    res = nets.run(cfg)
    assert list(res.columns) == list(ROW_COLUMNS)
    assert set(res.verdict) <= set(VERDICTS) and (res.family == "nets").all()
    claims = set(res.claim)
    assert {"nets.equilibrium.sgd", "nets.rate.adamp", "nets.detection.fp32.recall",
            "nets.detection.bf16.precision", "nets.detection.bf16.cosine"} <= claims
    assert (res[res.claim.str.contains("bf16")].verdict == "REPORTED").all()
    assert (res[res.claim == "nets.rate.adamp"].predicted == -0.5).all()
    runs = sorted((tmp_path / "nets" / "runs").glob("*.csv"))
    assert len(runs) == 3 and not any("partial" in p.name for p in runs)
    stamps = {p: p.stat().st_mtime_ns for p in runs}
    again = nets.run(cfg)  # resumes: finished runs are read back, not redone
    assert {p: p.stat().st_mtime_ns for p in runs} == stamps
    pd.testing.assert_frame_equal(res, again)
    monkeypatch.setattr(nets, "EQUILIBRIUM", {"sgd": dict(nets.EQUILIBRIUM["sgd"], lr=0.05)})
    nets.run(cfg)  # a different configuration goes to a new file, never into the old one
    assert len(list((tmp_path / "nets" / "runs").glob("equilibrium-sgd-*.csv"))) == 2
    paths = nets.plot(again, cfg)
    assert {p.name for p in paths} == {"equilibrium.png", "rate.png", "detection.png"}
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_only_pattern_skips_unneeded_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(nets, "_plan", tiny_plan)
    cfg = VerifyConfig(quick=True, out=tmp_path, only="nets.rate.*")
    assert [c for c, *_ in nets.plan(cfg)] == ["nets.rate.adamp"]
    res = nets.run(cfg)
    assert set(res.claim) == {"nets.rate.adamp"}
    assert not list((tmp_path / "nets" / "runs").glob("equilibrium-*"))


@pytest.mark.slow
def test_quick_family_on_the_default_problem(tmp_path):
    """Quick mode: one seed and a window of 1–4 relaxation times give fewer than two blocks of
    2τ for most rules, so the equilibrium rows are INCONCLUSIVE by the interval rule (never
    decided by a point estimate); nothing FAILs; the restated detection claims PASS."""
    res = nets.run(VerifyConfig(quick=True, out=tmp_path))
    eq = res[res.claim.str.startswith("nets.equilibrium")]
    assert len(eq) == 8 and not (res.verdict == "FAIL").any(), res[["claim", "setting", "error"]]
    by = res.set_index("claim")
    assert by.loc["nets.detection.fp32.recall", "measured"] == 1.0
    assert by.loc["nets.detection.fp32.precision", "verdict"] == "PASS"


def test_rate_window_follows_the_documented_rule():
    """lo = max(T/10, 3·t0, t0 + 3/(1 − β2) for Adam-type rules): the matched start's transient
    and the second moment's re-adaptation are outside every fit."""
    assert nets.rate_window("sgd", 117, 1117) == pytest.approx((351.0, 1118.0))
    assert nets.rate_window("sgd", 117, 4117) == pytest.approx((411.7, 4118.0))
    assert nets.rate_window("adamp", 20, 1020) == pytest.approx((320.0, 1021.0))  # β2 = 0.99
    assert nets.rate_window("adamw", 234, 4234) == pytest.approx((702.0, 4235.0))


def _detection_frame(fired_on_classifier: int, fired_on_vector: int) -> pd.DataFrame:
    rows = []
    for step in range(100):
        rows.append({"step": step, "layer": "body.0.weight", "scale_invariant": True, "d": 640,
                     "channels": 10, "detected": 1, "rule": "sgd"})
        rows.append({"step": step, "layer": "head.weight", "scale_invariant": False, "d": 100,
                     "channels": 10, "detected": int(step < fired_on_classifier), "rule": "sgd"})
        rows.append({"step": step, "layer": "head.bias", "scale_invariant": False, "d": 10,
                     "channels": 10, "detected": int(step < fired_on_vector), "rule": "sgd"})
    return pd.DataFrame(rows).assign(detected=lambda d: d.detected.astype("Int64"),
                                     cos_channel=0.5, thr_channel=0.01)


def test_detection_false_positives_only_where_the_theory_predicts_them():
    """Restated claim: precision over every layer except non-invariant decayed matrices is 1;
    false positives on such a matrix (the classifier at its weight-decay equilibrium) are
    REPORTED with their rate; one false positive anywhere else FAILs."""
    class P:
        name = "toy"

    ok, _ = nets.detection_rows(VerifyConfig(), P(), {}, [_detection_frame(3, 0)],
                                {"fp32": True, "bf16": False})
    by = {r["claim"]: r for r in ok}
    assert by["nets.detection.fp32.precision"]["verdict"] == "PASS"
    assert by["nets.detection.fp32.recall"]["verdict"] == "PASS"
    rate = by["nets.detection.fp32.equilibrium_fire_rate"]
    assert rate["verdict"] == "REPORTED" and rate["measured"] == pytest.approx(0.03)
    assert rate["measured_lo"] < 0.03 < rate["measured_hi"]
    bad, _ = nets.detection_rows(VerifyConfig(), P(), {}, [_detection_frame(3, 1)],
                                 {"fp32": True, "bf16": False})
    assert {r["claim"]: r for r in bad}["nets.detection.fp32.precision"]["verdict"] == "FAIL"

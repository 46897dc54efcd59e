"""The scale-invariance probes: ground truth from the module graph, per-step measurements, the
detection test against the optimizer's own verdict, diagnostics, tables, replicas, overhead."""
import math
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import sandbox
from sandbox.measure import step_geometry
from sandbox.probes import (COLUMNS, ScaleInvarianceProbe, attach, numerical_scale_invariance,
                            scale_invariance_ground_truth, training_hook)

DT = torch.float64


# --- architectures ----------------------------------------------------------------------------
class Residual(nn.Module):
    """conv→BN (invariant), conv + skip connection (not), conv→ReLU→BN on a normalised input
    (invariant), the classifier (not)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(3)
        self.c2 = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.c3 = nn.Conv2d(3, 3, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        y = self.c2(x) + x
        z = self.bn1(self.c1(x))
        w = self.bn3(F.relu(self.c3(z)))
        return self.fc(F.adaptive_avg_pool2d(w + y, 1).flatten(1))


class Norms(nn.Module):
    """Linear+bias→LayerNorm (not), Linear→LayerNorm (whole matrix), conv+bias→GroupNorm with one
    channel per group (bias removed: invariant), conv+bias→GroupNorm(2 groups) (not)."""

    def __init__(self):
        super().__init__()
        self.a, self.ln = nn.Linear(5, 6), nn.LayerNorm(6)
        self.b, self.ln2 = nn.Linear(6, 6, bias=False), nn.LayerNorm(6)
        self.c = nn.Linear(6, 3)
        self.g, self.gn = nn.Conv1d(2, 4, 3), nn.GroupNorm(4, 4)
        self.g2, self.gn2 = nn.Conv1d(4, 4, 3), nn.GroupNorm(2, 4)

    def forward(self, x):
        h = self.ln2(self.b(self.ln(self.a(x))))
        u = self.gn2(self.g2(self.gn(self.g(x[:, :4].reshape(-1, 2, 2).repeat(1, 1, 4)))))
        return self.c(h) + torch.tanh(u).flatten(1)[:, :3]


def zoo():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(),      # bias before BN: invariant
                        nn.Linear(16, 16, bias=False), nn.ReLU(), nn.MaxPool1d(1), nn.BatchNorm1d(16),
                        nn.Linear(16, 16), nn.ReLU(), nn.BatchNorm1d(16),  # bias, then ReLU: not
                        nn.Linear(16, 4))
    return [("mlp", mlp, torch.randn(32, 8)), ("residual", Residual(), torch.randn(4, 3, 5, 5)),
            ("norms", Norms(), torch.randn(8, 5))]


@pytest.mark.parametrize("name,model,x", zoo(), ids=lambda v: v if isinstance(v, str) else "")
def test_module_graph_ground_truth_equals_the_numerical_check(name, model, x):
    fx = scale_invariance_ground_truth(model)
    numeric = numerical_scale_invariance(model, lambda net: net(x.double()))
    assert set(numeric) <= set(fx)
    assert any(numeric.values()) and not all(numeric.values())  # the zoo has both kinds
    for k, v in numeric.items():
        assert fx[k].scale_invariant == v, (k, fx[k].reason)
    hooks = scale_invariance_ground_truth(model, x, method="hooks")
    for k, v in numeric.items():  # the fallback is conservative: never a false "invariant"
        assert not hooks[k].scale_invariant or v, k
    assert all(not v.scale_invariant for k, v in fx.items() if k.endswith("bias"))


def test_ground_truth_equals_the_problems_declaration():
    from sandbox.problems import get_problem

    for name in ("digits-bnmlp", "teacher-student", "teacher-student-bn"):
        p = get_problem(name)
        fx = scale_invariance_ground_truth(p.build(0))
        assert {k for k, v in fx.items() if v.scale_invariant} == set(p.scale_invariant), name


def test_untraceable_model_needs_an_example_input():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.bn = nn.Linear(4, 4, bias=False), nn.BatchNorm1d(4)

        def forward(self, x):
            return self.bn(self.fc(x)) if x.sum() > -1e9 else x  # data-dependent control flow

    with pytest.raises(ValueError, match="example_input"):
        scale_invariance_ground_truth(Branchy())
    gt = scale_invariance_ground_truth(Branchy(), torch.randn(8, 4))
    assert gt["fc.weight"].scale_invariant and gt["fc.weight"].method == "hooks"


# --- a small float64 net with both AdamP views ---------------------------------------------------
class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_bn, self.bn = nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)
        self.conv_gn, self.gn = nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.GroupNorm(1, 6)
        self.fc = nn.Linear(24, 5)

    def forward(self, x):
        x = F.relu(self.bn(self.conv_bn(x)))
        x = F.relu(self.gn(self.conv_gn(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 2).flatten(1))


def make_net(seed=0):
    torch.manual_seed(seed)
    return SmallNet().to(DT)


def batches(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 3, 6, 6, generator=g, dtype=DT), torch.randint(0, 5, (8,), generator=g))
            for _ in range(n)]


def train(net, opt, data):
    for x, y in data:
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()


def test_step_geometry_against_snapshots():
    net = make_net()
    opt = sandbox.create("sgd", net.parameters(), lr=0.3, momentum=0.9, weight_decay=1e-2)
    probe = attach(net, opt, schedule=1)
    snaps = []
    for x, y in batches(6):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        before = {n: p.detach().clone() for n, p in net.named_parameters()}
        opt.step()
        snaps.append({n: (before[n], p.detach().clone()) for n, p in net.named_parameters()})
    df = probe.frame()
    assert sorted(df.layer.unique()) == ["conv_bn.weight", "conv_gn.weight", "fc.weight"]
    for row in df.itertuples():
        w0, w1 = snaps[row.step][row.layer]
        ref = step_geometry(w0.reshape(1, -1), w1.reshape(1, -1))
        for k in ("norm", "delta", "radial", "tangential"):
            assert getattr(row, k) == pytest.approx(float(ref[k]), rel=1e-12, abs=1e-15), k
        # exact geometry: r_{t+1}^2 = (r + radial)^2 + tangential^2
        assert float(w1.norm()) ** 2 == pytest.approx((row.norm + row.radial) ** 2 + row.tangential ** 2,
                                                      rel=1e-12)


def test_effective_lr_is_lr_over_r_squared_for_plain_sgd():
    net = make_net()
    opt = sandbox.create("sgd", net.parameters(), lr=0.2)
    probe = attach(net, opt, schedule=1)
    train(net, opt, batches(5))
    df = probe.frame()
    assert len(df) == 15
    # u = −lr·g, so ‖Π⊥u‖ = lr‖Π⊥g‖ on every weight (invariant or not)
    np.testing.assert_allclose(df.eff_lr, 0.2 / df.norm ** 2, rtol=1e-9)
    inv = df.query("scale_invariant")  # and g ⟂ w there: the whole gradient is tangential
    np.testing.assert_allclose(inv.grad_tangential, inv.grad_norm, rtol=1e-9)
    fc = df.query("not scale_invariant")
    assert (fc.grad_tangential < fc.grad_norm * (1 - 1e-6)).all()


@pytest.mark.parametrize("rule", ["adamp", "sgdp"])
def test_detection_equals_the_optimizers_projection_verdict(rule):
    net = make_net()
    hp = dict(lr=1e-2) if rule == "adamp" else dict(lr=0.1, momentum=0.9)
    opt = sandbox.create(rule, net.parameters(), **hp)
    probe = attach(net, opt, schedule=1)
    train(net, opt, batches(12))
    df = probe.frame()
    assert (df.detected == df.projection).all()
    views = df.groupby("layer").detected.agg(lambda d: set(d))
    assert views["conv_bn.weight"] == {1} and views["conv_gn.weight"] == {2}  # channel, layer view
    assert (df.query("scale_invariant").detected > 0).all()
    expected_thr = 0.1 / math.sqrt(3 * 3 * 3)
    assert df.query("layer == 'conv_bn.weight'").thr_channel.iloc[0] == pytest.approx(expected_thr)


def test_adai_inertia_and_rootfree_preconditioner_statistics():
    net = make_net()
    opt = sandbox.create("adai", net.parameters(), lr=0.1)
    probe = attach(net, opt, schedule=[4])
    train(net, opt, batches(5))  # steps 0..4: last_info now holds step 4, the recorded one
    row = probe.frame().query("layer == 'conv_bn.weight'").iloc[0]
    assert row.step == 4
    beta1 = opt.last_info[net.conv_bn.weight]["beta1"].reshape(-1).numpy()
    assert row.beta1_mean == pytest.approx(beta1.mean(), rel=1e-12)
    for q, col in ((0.05, "beta1_q05"), (0.5, "beta1_q50"), (0.95, "beta1_q95")):
        assert row[col] == pytest.approx(np.quantile(beta1, q, method="nearest"), rel=1e-12)
    assert 0.0 <= row.beta1_q05 <= row.beta1_q95 <= 1 - 1e-3
    assert np.isnan(row.precond_min)

    net = make_net()
    opt = sandbox.create("rfadamw", net.parameters(), batch_size=8)
    probe = attach(net, opt, schedule=1)
    train(net, opt, batches(3))
    row = probe.frame().query("step == 2 and layer == 'conv_gn.weight'").iloc[0]
    bv = (8 * opt.state[net.conv_gn.weight]["exp_avg_sq"]).reshape(-1).numpy()
    assert (row.precond_min, row.precond_max) == (pytest.approx(bv.min()), pytest.approx(bv.max()))
    assert row.precond_q50 == pytest.approx(np.quantile(bv, 0.5, method="nearest"))
    assert np.isnan(row.beta1_mean)


def test_schedule_table_and_incremental_csv(tmp_path):
    net = make_net()
    opt = sandbox.create("adamw", net.parameters(), lr=1e-3)
    path = tmp_path / "probe.csv"
    probe = attach(net, opt, schedule=[0, 3, 4, 9], path=path, flush_every=2,
                   labels={"rule": "adamw"})
    train(net, opt, batches(5))
    assert path.exists()  # two records were flushed before the end
    assert sorted(pd.read_csv(path).step.unique()) == [0, 3]
    train(net, opt, batches(5, seed=3))
    probe.detach()
    train(net, opt, batches(1, seed=4))  # detached: step 10 is not counted any more
    df = probe.frame()
    assert sorted(df.step.unique()) == [0, 3, 4, 9]
    assert list(df.columns[:6]) == ["step", "layer", "replica", "d", "channels", "scale_invariant"]
    assert set(COLUMNS) <= set(df.columns) and (df.rule == "adamw").all()
    on_disk = pd.read_csv(path)
    pd.testing.assert_frame_equal(on_disk[["step", "layer", "norm", "delta"]],
                                  df[["step", "layer", "norm", "delta"]], check_dtype=False)


def test_the_probe_adds_no_host_synchronisation_to_a_step():
    """Between flushes the hooks read nothing back: no .item/.cpu/.numpy/.tolist/bool/float."""
    net = make_net()
    opt = sandbox.create("sgdp", net.parameters(), lr=0.1, momentum=0.9, nonfinite="ignore")
    probe = attach(net, opt, schedule=1, flush_every=10_000)
    data = batches(3)
    calls = []

    def spy(name):
        orig = getattr(torch.Tensor, name)

        def f(self, *a, **k):
            # a numpy view of a CPU tensor copies nothing (the CPU kernels index it)
            if not (name == "numpy" and self.device.type == "cpu"):
                calls.append(name)
            return orig(self, *a, **k)
        return mock.patch.object(torch.Tensor, name, f)

    names = ("item", "cpu", "numpy", "tolist", "__bool__", "__float__")
    for x, y in data:
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        patches = [spy(n) for n in names]
        for p in patches:
            p.start()
        try:
            opt.step()
        finally:
            for p in patches:
                p.stop()
    assert calls == []
    assert len(probe.frame()) == 3 * 3  # and the records are all there


def test_stacked_replicas_equal_separate_runs():
    from sandbox.problems import get_problem
    from sandbox.training.runs import train_seeds

    problem = get_problem("digits-bnmlp", dtype=torch.float64)
    tables = {}
    for stacked in (True, False):
        probes = []

        def hook(*args):
            probes.append(training_hook(schedule=3)(*args))
            return probes[-1]

        train_seeds(problem, "adamp", [0, 1, 2], dict(lr=1e-2), steps=7, attach=hook, stacked=stacked)
        tables[stacked] = pd.concat([p.frame() for p in probes], ignore_index=True)
    s, sep = tables[True], tables[False]
    assert set(s.replica) == {0, 1, 2} and set(sep.replica) == {0}
    m = s.merge(sep, on=["step", "layer", "seed"], suffixes=("_s", "_l"))
    assert len(m) == len(s) == 3 * 3 * 3
    for k in ("norm", "delta", "radial", "cos_channel", "eff_lr"):
        np.testing.assert_allclose(m[f"{k}_s"], m[f"{k}_l"], rtol=1e-9, atol=1e-14, err_msg=k)
    assert (m.detected_s == m.detected_l).all() and (m.projection_s == m.projection_l).all()


def test_bad_input_names_the_value():
    net = make_net()
    opt = sandbox.create("sgd", net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="schedule=0"):
        attach(net, opt, schedule=0)
    with pytest.raises(ValueError, match="flush_every=0"):
        attach(net, opt, flush_every=0)
    with pytest.raises(ValueError, match="no weight to record"):
        ScaleInvarianceProbe(opt, {"x": torch.zeros(3, 3)})
    with pytest.raises(ValueError, match="method='fast'"):
        scale_invariance_ground_truth(net, method="fast")


def test_overhead_benchmark_measures_three_engines():
    from sandbox.benchmarks.probes import COLUMNS as BENCH, measure

    row = measure("digits-bnmlp", "sgd", "cpu", block=10, repeats=1)
    assert set(BENCH) == set(row)
    assert row["plain_ms_per_step"] > 0 and row["every_step_ms_per_step"] > 0
    assert row["overhead"] == pytest.approx(row["probed_ms_per_step"] / row["plain_ms_per_step"] - 1)


@pytest.mark.gpu
def test_probe_on_cuda_matches_cpu():
    tables = []
    for device in ("cpu", "cuda"):
        net = make_net().to(device)
        opt = sandbox.create("adamp", net.parameters(), lr=1e-2)
        probe = attach(net, opt, schedule=1)
        train(net, opt, [(x.to(device), y.to(device)) for x, y in batches(4)])
        tables.append(probe.frame())
    for k in ("norm", "delta", "tangential", "cos_channel"):
        np.testing.assert_allclose(tables[0][k], tables[1][k], rtol=1e-6, atol=1e-12, err_msg=k)
    assert (tables[0].detected == tables[1].detected).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("n,ties", [(10, 0.0), (128, 0.6), (7808, 0.0), (16384, 0.3)])
def test_quantiles_are_the_nearest_order_statistics(dtype, n, ties):
    """The probe's per-row quantiles (numpy's selection on the CPU, kthvalue for 16-bit) equal
    the order statistics nearest to q·(n−1), taken from a full sort, ties included."""
    from sandbox.probes.probe import _quantiles

    g = torch.Generator().manual_seed(n)
    x = torch.rand(3, n, generator=g, dtype=torch.float64)
    x[x < ties] = 0.25
    x = x.to(dtype)
    qs = (0.05, 0.5, 0.95)
    got = _quantiles(x, qs)
    ref = torch.sort(x, dim=-1).values[:, [round(q * (n - 1)) for q in qs]].T
    assert got.dtype == dtype and got.shape == (3, 3)
    assert torch.equal(got, ref)

"""Every figure function renders small synthetic data with readable text: at the saved size no
text is below 8 pt, none leaves the figure and no two texts overlap (measured with matplotlib's
renderer, :func:`sandbox.plotting.text_problems`, at the moment each figure is saved)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from sandbox.plotting import MIN_FONT, text_problems  # noqa: E402
from sandbox.verify.base import ROW_COLUMNS, VerifyConfig  # noqa: E402

RNG = np.random.default_rng(0)


@pytest.fixture
def checked(monkeypatch):
    """Every Figure.savefig first checks the figure; returns the list of (file, problems)."""
    seen = []
    original = Figure.savefig

    def savefig(self, fname, *args, **kwargs):
        seen.append((str(fname), text_problems(self)))
        return original(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return seen


def assert_clean(seen, expected: int):
    assert len(seen) >= expected, f"expected {expected} figures, saved {[f for f, _ in seen]}"
    bad = {f: p for f, p in seen if p}
    assert not bad, "\n".join(f"{f}:\n  " + "\n  ".join(p[:10]) for f, p in bad.items())


def _steps(n=60, top=1000):
    return np.unique(np.geomspace(1, top, n).astype(int)).astype(float)


def _row(**kw):
    row = dict.fromkeys(ROW_COLUMNS, "")
    row.update(family="f", setting="s", predicted=1.0, measured=1.0, measured_lo=np.nan,
               measured_hi=np.nan, error=0.0, error_kind="relative", tolerance=0.05,
               verdict="PASS", status="derived", note="")
    row.update(kw)
    return row


# --- verify families ---------------------------------------------------------------------------
def test_asymptote_figures(tmp_path, checked):
    from sandbox.verify.families import asymptotes

    t = _steps()
    frames = []
    for i, lab in enumerate(["sgd β=0", "sgd β=0.9", "sgdp β=0.9", "adam", "adamp", "adai", "adaip"]):
        d = 0.5 / np.sqrt(t + 20) * (1 + 0.02 * RNG.standard_normal(t.size))
        frames.append(pd.DataFrame({"rule": lab.split()[0], "label": lab, "kind": "power",
                                    "step": t, "quantity": "delta", "measured": d,
                                    "measured_q05": 0.8 * d, "measured_q95": 1.2 * d,
                                    "predicted": np.where(t > 100, 0.5 / np.sqrt(t + 20), np.nan),
                                    "asymptote": 0.5 / np.sqrt(t), "norm": np.sqrt(t)}))
    for lab, kind in [("rfadamw", "geometric"), ("rfrmsprop", "geometric"),
                      ("rfadamw damped", "crossover")]:
        r = np.exp(t / 500)
        frames.append(pd.DataFrame({"rule": lab.split()[0], "label": lab, "kind": kind,
                                    "step": t, "quantity": "delta", "measured": 0.01 + 0 * t,
                                    "measured_q05": 0.009, "measured_q95": 0.011,
                                    "predicted": 0.01, "asymptote": 0.012, "norm": r}))
    curves = pd.concat(frames, ignore_index=True)
    norm = curves.assign(quantity="norm", measured=curves["norm"],
                         measured_q05=0.9 * curves["norm"], measured_q95=1.1 * curves["norm"])
    cfg = VerifyConfig(out=tmp_path)
    pd.concat([curves, norm]).to_csv(cfg.family_dir("asymptotes") / "curves.csv", index=False)
    assert len(asymptotes.plot(pd.DataFrame(columns=ROW_COLUMNS), cfg)) == 3
    assert_clean(checked, 3)


def test_equilibrium_figures(tmp_path, checked):
    from sandbox.verify.families import equilibria

    rules = ["sgd β=0", "sgd β=0.9", "sgdp β=0.9", "adamw", "adamp", "adai", "adaiw", "adaiwp",
             "rfadamw (grows)", "rfadamw (shrinks)", "adam σ=0.5", "adam σ=2"]
    rows = [_row(claim="equilibrium.delta", rule=r, predicted=0.01 * (1 + i % 3),
                 measured=0.0102 * (1 + i % 3), measured_lo=0.0098 * (1 + i % 3),
                 measured_hi=0.0106 * (1 + i % 3)) for i, r in enumerate(rules)]
    t = _steps()
    curves = pd.concat([pd.DataFrame({"rule": r, "label": r, "kind": "main", "step": t,
                                      "measured": 1 - 0.3 * (1 - np.exp(-t / 200)),
                                      "measured_q05": 0.9, "measured_q95": 1.0,
                                      "predicted": 1 - 0.3 * (1 - np.exp(-t / 210)),
                                      "delta": 0.01}) for r in rules[:8]])
    cfg = VerifyConfig(out=tmp_path)
    curves.to_csv(cfg.family_dir("equilibria") / "curves.csv", index=False)
    assert len(equilibria.plot(pd.DataFrame(rows, columns=ROW_COLUMNS), cfg)) == 2
    assert_clean(checked, 2)


def test_schedule_figures(tmp_path, checked):
    """The schedules family: one figure of the rules with a prediction, and the measured-only
    rules in figures of at most 7 rules each."""
    from sandbox.verify.families import schedules

    t = np.arange(0, 2000, 5)
    gamma = 0.05 * 0.5 * (1 + np.cos(np.pi * t / 2000))
    frames = []
    for i, rule in enumerate(["sgd", "adamw", "adamp", "lion", "adamc", "sgdc"] +
                             [f"other{j}" for j in range(9)]):
        for q, base in (("norm", 2 + np.sqrt(t / 100)), ("delta", 0.01 * gamma / 0.05 + 1e-6),
                        ("grad_ratio", 1 / (2 + np.sqrt(t / 100)) ** 2)):
            frames.append(pd.DataFrame({"rule": rule, "quantity": q, "step": t, "gamma": gamma,
                                        "measured": base * (1 + 0.01 * RNG.standard_normal(len(t))),
                                        "predicted": base if i < 6 else np.nan}))
    cfg = VerifyConfig(out=tmp_path)
    pd.concat(frames).to_csv(cfg.family_dir("schedules") / "curves.csv", index=False)
    paths = schedules.plot(pd.DataFrame(columns=ROW_COLUMNS), cfg)
    assert [p.name for p in paths] == ["schedules.png", "schedules_reported_0.png",
                                       "schedules_reported_1.png"]
    assert_clean(checked, 3)


def test_identity_and_invariance_figures(tmp_path, checked):
    from sandbox.verify.families import identities, invariances

    t = _steps(40, 100)
    frames = []
    for claim, _ in identities.PANELS:
        for j, (rule, toy) in enumerate([("sgdp", "noise"), ("adamp", "noise"), ("adaip", "noise"),
                                         ("adaiwp", "noise"), ("rfadamwp", "noise"),
                                         ("sgdp", "bn-linear"), ("adamp", "bn-linear")]):
            y = 1 + 0.01 * (j + 1) * t
            frames.append(pd.DataFrame({"claim": claim, "rule": rule, "toy": toy, "variant": "",
                                        "setting": "weight_decay=0 lr=0.1", "quantity": "r",
                                        "step": t, "predicted": y, "measured": y,
                                        "measured_q05": 0.95 * y, "measured_q95": 1.05 * y,
                                        "residual": 1e-15 * t}))
    cfg = VerifyConfig(out=tmp_path)
    pd.concat(frames).to_csv(cfg.family_dir("identities") / "curves.csv", index=False)
    ortho = [_row(claim="identity.orthogonality", rule="sgd", measured=1e-16 * (i + 1),
                  setting=f"toy={toy} <w,g>" if i % 2 else f"toy={toy} scaling")
             for i, toy in enumerate(["noise", "rayleigh", "cosine", "bn-linear", "ln-linear"] * 2)]
    identities.plot(pd.DataFrame(ortho, columns=ROW_COLUMNS), cfg)

    inv = []
    for claim, variant in [("invariance.adam_loss_scale", ""), ("invariance.adam_loss_scale", "default v0"),
                           ("invariance.rootfree_reparam.update_factor", ""),
                           ("invariance.adam_loss_scale.trajectory", ""),
                           ("invariance.rootfree_reparam", "mapped v0"),
                           ("invariance.rootfree_newton", "H=1"), ("invariance.rootfree_newton", "H=100")]:
        for rule in ["sgd", "adam", "adamw", "rfadamw", "rfrmsprop", "adai", "sgdp", "adamp"]:
            inv.append(pd.DataFrame({"claim": claim, "rule": rule, "setting": "", "variant": variant,
                                     "x": "step", "step": t, "predicted": 1e-3 / t,
                                     "measured": 1.1e-3 / t, "measured_q05": 1e-3 / t,
                                     "measured_q95": 1.2e-3 / t}))
    pd.concat(inv).to_csv(cfg.family_dir("invariances") / "curves.csv", index=False)
    invariances.plot(pd.DataFrame(columns=ROW_COLUMNS), cfg)
    assert_clean(checked, 2)


def test_escape_figures(tmp_path, checked):
    from sandbox.escape.plots import plot_escape

    rows = []
    for rule in ["sgd", "momentum", "adam", "adai", "rfadamw"]:
        for k in [1.0, 1.41, 2.0, 2.83, 4.0]:
            y = 4 + 7 / k
            rows.append({"rule": rule, "problem": "double_well", "k": k, "B": 8.0, "lr": 0.1,
                         "lr_factor": 1.0, "neg_log_rate": y, "nlr_lo": y - 0.1,
                         "nlr_hi": y + 0.1, "n_escaped": 50 if k > 1 else 5,
                         "predicted_neg_log_rate": y - 0.3})
        for B in [4.0, 16.0]:
            rows.append({"rule": rule, "problem": "double_well", "k": 2.0, "B": B, "lr": 0.1,
                         "lr_factor": 1.0, "neg_log_rate": 3 + B / 4, "nlr_lo": 2.9 + B / 4,
                         "nlr_hi": 3.1 + B / 4, "n_escaped": 100, "predicted_neg_log_rate": 3 + B / 4})
    rows += [dict(r, problem="stiff") for r in rows if r["rule"] == "adai" and r["B"] == 8.0]
    paths = plot_escape(pd.DataFrame(rows), tmp_path)
    assert len(paths) == 3
    assert_clean(checked, 3)


def _probes(experiment: str, rules, steps=400) -> pd.DataFrame:
    frames = []
    for rule in rules:
        for layer, inv in [("body.0.weight", True), ("body.3.weight", True), ("body.6.weight", False)]:
            s = np.arange(0, steps, 5)
            frames.append(pd.DataFrame({
                "step": s, "layer": layer, "scale_invariant": inv, "rule": rule, "seed": 0,
                "experiment": experiment, "delta": 0.02 * (1 + 0.2 * RNG.standard_normal(s.size)) ** 2,
                "predicted": 0.02, "window_start": 200, "window_stop": 400, "rescaled_at": 100,
                "t": s + 20.0, "cos_channel": np.where(inv, 1e-4, 0.3), "thr_channel": 0.01,
                "cos_layer": np.where(inv, 1e-4, 0.2), "thr_layer": 0.003}))
    return pd.concat(frames, ignore_index=True)


def test_net_figures(tmp_path, checked):
    from sandbox.probes.plots import plot_detection, plot_equilibrium, plot_rate

    eq = _probes("equilibrium", ["sgd", "sgdp", "adamw", "adamp"])
    plot_equilibrium(eq, tmp_path / "eq.png")
    rate = _probes("rate", ["sgd", "adamw", "sgdp", "adamp"], steps=1000)
    rate = rate.assign(predicted=0.5 / np.sqrt(rate.t))
    plot_rate(rate, tmp_path / "rate.png")
    plot_detection(pd.concat([eq, _probes("bf16", ["adamp"])]), tmp_path / "det.png")
    assert_clean(checked, 3)


# --- notebooks ---------------------------------------------------------------------------------
def test_notebook_views(checked, tmp_path):
    import matplotlib.pyplot as plt

    from sandbox.notebook.escape_views import draw_exponents

    decisions = pd.DataFrame([{"rule": r, "problem": "double_well", "variable": "k",
                               "alpha_hat": a, "alpha_lo": a - 0.1, "alpha_hi": a + 0.1,
                               "alpha_pred": a, "law": "1/k", "law_pred": "1/k",
                               "verdict": "PASS", "status": "published"}
                              for r, a in [("sgd", 1.0), ("adam", 0.5), ("rfadamw", 0.0)]])
    fig = draw_exponents(decisions)
    fig = fig if fig is not None else plt.gcf()
    fig.savefig(tmp_path / "exponents.png")
    assert_clean(checked, 1)


def test_the_checker_sees_small_fonts_and_overlaps():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
    ax.set_title("tiny", fontsize=MIN_FONT - 2)
    ax.text(0.5, 0.5, "one", fontsize=10, transform=ax.transAxes)
    ax.text(0.5, 0.5, "two", fontsize=10, transform=ax.transAxes)
    ax.text(2.0, 0.5, "outside", fontsize=10, transform=ax.transAxes)
    problems = "\n".join(text_problems(fig))
    plt.close(fig)
    assert "'tiny'" in problems and "overlaps" in problems and "clipped" in problems


def _toy_table(rules=("sgd", "adamw")) -> pd.DataFrame:
    t = _steps(50, 500)
    frames = []
    for rule in rules:
        for q, y in (("delta", 0.3 / np.sqrt(t + 10)), ("norm", (1 + t / 50) ** 0.25)):
            frames.append(pd.DataFrame({"step": t, "quantity": q, "rms": y, "q05": 0.9 * y,
                                        "q95": 1.1 * y, "predicted": y * 1.01, "rule": rule,
                                        "label": rule}))
    return pd.concat(frames, ignore_index=True)


def test_notebook_drawings(tmp_path, checked):
    import matplotlib.pyplot as plt

    from sandbox.notebook.effective_step_panel import draw_effective_step
    from sandbox.notebook.equilibria import draw_layers
    from sandbox.notebook.escape_views import draw_rates
    from sandbox.notebook.toy_runs import draw_runs

    table = _toy_table()
    for q in ("delta", "norm"):
        ax = draw_runs(table, q, title=f"{q} per rule")
        ax.figure.savefig(tmp_path / f"runs_{q}.png")
        plt.close(ax.figure)
    fig = draw_effective_step(table[table.rule == "sgd"], None, title="sgd: lr=0.1")
    fig.savefig(tmp_path / "panel.png")
    fig = draw_layers(_probes("equilibrium", ["sgd", "sgdp", "adamw"]))
    fig.savefig(tmp_path / "layers.png")
    rows = [{"rule": r, "problem": "double_well", "k": k, "B": 8.0, "lr": 0.1,
             "neg_log_rate": 5 / k, "nlr_lo": 5 / k - 0.1, "nlr_hi": 5 / k + 0.1,
             "n_escaped": 40, "predicted_neg_log_rate": 5 / k}
            for r in ("sgd", "adam", "rfadamw") for k in (1.0, 2.0, 4.0)]
    fig = draw_rates(pd.DataFrame(rows), "k")
    fig.savefig(tmp_path / "rates.png")
    plt.close("all")
    assert_clean(checked, 5)


def _compare_folder(out):
    """A comparison folder in the format of :mod:`sandbox.compare` (two rules, one seed each,
    a tuning table and per-layer probes): one run in the theory's regime, one outside it."""
    import json

    (out / "runs").mkdir(parents=True)
    (out / "probes").mkdir()
    steps = np.arange(0, 400, 10)
    tuning = []
    for rule, lr, wd in (("sgdp", 0.1, 0.0), ("adamw", 1e-3, 1e-2)):
        rid = f"defaults-{rule}-lr{lr:g}-seed0"
        hp = {"lr": [lr, "test"], "weight_decay": [wd, "test"], "momentum": [0.9, "test"],
              "betas": [[0.9, 0.999], "test"]}
        (out / "runs" / f"{rid}.json").write_text(json.dumps(
            {"run_id": rid, "phase": "defaults", "rule": rule, "lr": lr, "seed": 0,
             "status": "finished", "hp": hp}))
        pd.DataFrame({"seed": 0, "step": steps, "test_acc": 1 - np.exp(-steps / 100),
                      "test_loss": np.exp(-steps / 100) + 0.05, "rule": rule, "lr": lr,
                      "phase": "defaults"}).to_csv(out / "runs" / f"{rid}.csv", index=False)
        norm = np.sqrt(1 + steps / 50.0)
        for layer in ("body.0.weight", "body.3.weight"):
            delta = 0.02 / norm ** 2 if rule == "sgdp" else 0.02 * np.exp(-steps / 100)
            pd.DataFrame({"step": steps, "layer": layer, "replica": 0, "scale_invariant": True,
                          "d": 4096, "channels": 64,
                          "norm": norm, "delta": delta, "rule": rule, "phase": "defaults",
                          "seed": 0}).to_csv(out / "probes" / f"{rid}.csv", index=False,
                                             mode="a", header=layer == "body.0.weight")
        tuning += [{"rule": rule, "lr": x, "valid_acc": 0.9 - abs(np.log10(x / lr)) / 10,
                    "status": "finished", "chosen": x == lr} for x in (lr / 10, lr, lr * 10)]
    pd.DataFrame(tuning).to_csv(out / "tuning.csv", index=False)


def test_compare_figures(tmp_path, checked):
    from sandbox.compare.figures import make_figures

    _compare_folder(tmp_path / "cmp")
    paths = make_figures(tmp_path / "cmp")
    assert {p.name for p in paths} == {"curves.png", "effective_step.png"}
    assert_clean(checked, 2)


def test_compare_draws_no_prediction_outside_the_theorys_regime(tmp_path):
    """A layer whose scale-free update size falls 50× (early training) gets no theory line;
    one in the noise-dominated regime (A constant) gets one."""
    import json

    from sandbox.compare.figures import A_DRIFT, update_size_drift

    _compare_folder(tmp_path / "cmp")
    for rule, expect_regime in (("sgdp", True), ("adamw", False)):
        rid = next(p.stem for p in (tmp_path / "cmp" / "runs").glob(f"*-{rule}-*.json"))
        hp = json.loads((tmp_path / "cmp" / "runs" / f"{rid}.json").read_text())["hp"]
        probes = pd.read_csv(tmp_path / "cmp" / "probes" / f"{rid}.csv")
        drift = update_size_drift(probes[probes.layer == "body.0.weight"], hp, rule)
        assert (drift <= A_DRIFT) == expect_regime, (rule, drift)

"""Escape-time verdicts at a small size with fixed seeds, through the registry's real optimizers."""
import numpy as np
import pandas as pd
import pytest

from sandbox.escape import decide_laws, predicted_laws, run_escape_grid, simulate_cell
from sandbox.escape import simulate as simulate_module
from sandbox.escape.__main__ import main as escape_main
from sandbox.verify.base import ROW_COLUMNS, VerifyConfig

KS = (1.0, 2 ** 0.5, 2.0, 2 ** 1.5, 4.0)
# the quick experiment's size (EscapeExperiment.quick): at 4,000 particles and 2,500 steps the
# flattest point counts only ~30 escapes and SGD's 1/k law was not resolved (seen with seed 11)
SMALL = dict(particles=10_000, max_steps=2000, burn_in=400, exponent_ref=3.5, threads=1)
REF = dict(barrier=0.05, h0=1.0, exponent_ref=3.5)


def test_k_laws_of_sgd_momentum_adam_rootfree():
    rules = ["sgd", "momentum", "adam", "rfadamw"]
    rates = run_escape_grid(rules, KS, B=8, seed=11, **SMALL)
    dec = decide_laws(rates, predicted_laws(rules, 2.0, 8.0, **REF)).set_index("rule")
    assert list(dec["law"]) == ["1/k", "1/k", "1/sqrt(k)", "k^0"]
    assert (dec["law"] == dec["law_pred"]).all()
    assert dec.loc[["sgd", "momentum", "adam"], "verdict"].eq("PASS").all()
    assert dec.loc["rfadamw", "verdict"] == "REPORTED"  # root-free's claim is open
    assert dec.loc[["sgd", "adam", "rfadamw"], "separated"].all()
    # escapes were counted at every point, and the rates fall with 1/k except for root-free
    assert (rates["n_escaped"] >= 10).all()
    for rule in ["sgd", "momentum", "adam"]:
        assert rates[rates.rule == rule].sort_values("k")["neg_log_rate"].diff().dropna().lt(0).all()


def test_adai_with_stiff_spectators_keeps_the_sgd_law_at_high_inertia():
    rates = run_escape_grid(["adai"], KS, B=8, seed=12, problem="stiff", spectators=(5.0,) * 3,
                            **SMALL)
    dec = decide_laws(rates, predicted_laws(["adai"], 2.0, 8.0, **REF)).iloc[0]
    assert dec["law"] == "1/k" and dec["verdict"] == "PASS"
    # the design: the escape coordinate's v̂ is below v̄, so its inertia is large and grows as
    # the minimum gets flatter (v̂_0 ∝ k while the spectators' v stays put)
    beta1 = rates.sort_values("k")["beta1_escape"].to_numpy()
    assert (beta1 > 0.9).all() and (np.diff(beta1) < 0).all()
    assert (rates["beta1_spectators"] < 0.9).all()


def test_adai_in_one_dimension_is_ema_momentum():
    p = simulate_module.EscapeProblem.grid([2.0], 500, batch_size=8)
    first, diag = simulate_cell("adai", p, 0.1, 400, seed=0)
    assert first.shape == (500,)
    sampled = diag["beta1_escape"][np.isfinite(diag["beta1_escape"])]  # inside at a check
    assert sampled.size > 400 and np.allclose(sampled, 0.9)  # v̂/v̄ ≡ 1: β1 = 1 − β0


def test_batch_size_and_lr_laws_of_sgd():
    rates = pd.concat([
        run_escape_grid(["sgd"], [2.0], B=[4, 8, 16], seed=13, **SMALL),
        run_escape_grid(["sgd"], [2.0], B=8, eta=[0.5, 2.0], seed=13, **SMALL),
    ], ignore_index=True)
    dec = decide_laws(rates, predicted_laws(["sgd"], 2.0, 8.0, **REF)).set_index("variable")
    assert dec.loc["B", "law"] == "B" and dec.loc["eta", "law"] == "1/eta"
    assert dec["verdict"].eq("PASS").all()


def test_grid_is_written_as_it_goes_and_resumes(tmp_path, monkeypatch):
    first = run_escape_grid(["sgd", "adam"], [1.0, 4.0], B=8, particles=300, max_steps=300,
                            seed=1, out=tmp_path)
    saved = pd.read_csv(tmp_path / simulate_module.RATES_FILE)
    assert len(saved) == 4 and len(list((tmp_path / simulate_module.PASSAGE_DIR).iterdir())) == 2

    def refuse(*args, **kwargs):
        raise AssertionError("a finished cell was simulated again")

    monkeypatch.setattr(simulate_module, "simulate_cell", refuse)
    again = run_escape_grid(["sgd", "adam"], [1.0, 4.0], B=8, particles=300, max_steps=300,
                            seed=1, out=tmp_path)
    pd.testing.assert_frame_equal(again.reset_index(drop=True),
                                  saved.reset_index(drop=True), check_dtype=False)
    assert len(first) == 4


def test_verify_family_quick_for_sgd(tmp_path):
    from sandbox.verify.families import escape

    cfg = VerifyConfig(quick=True, out=tmp_path, only="escape.sgd*")
    rows = escape.run(cfg)
    assert list(rows.columns) == list(ROW_COLUMNS)
    assert set(rows["rule"]) == {"sgd"}
    graded = rows[rows["claim"].isin(["escape.sgd", "escape.sgd.B", "escape.sgd.eta"])]
    # quick: the k and B sweeps (the η sweep is the full mode's). At 3,000 particles the B
    # decision is separated; the k decision follows the predicted law (smallest AIC) but may
    # keep 1/√k too (INCONCLUSIVE: seen on 1 of 4 seeds) — never another law (no FAIL)
    assert set(graded["claim"]) == {"escape.sgd", "escape.sgd.B"}
    assert (graded["measured"] == graded["predicted"]).all()
    assert graded.set_index("claim").loc["escape.sgd.B", "verdict"] == "PASS"
    assert graded["verdict"].isin(["PASS", "INCONCLUSIVE"]).all()
    assert rows[rows["claim"] == "escape.sgd.slope"]["verdict"].eq("REPORTED").all()
    paths = escape.plot(rows, cfg)
    assert paths and all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_verify_family_skips_when_no_claim_is_selected(tmp_path):
    from sandbox.verify.families import escape

    cfg = VerifyConfig(quick=True, out=tmp_path, only="identity.*")
    assert escape.run(cfg).empty and escape.plan(cfg) == []


@pytest.mark.parametrize("argv", [["--particles", "0"], ["--max-steps", "-5"]])
def test_cli_rejects_bad_counts(argv, capsys):
    assert escape_main(argv + ["--no-progress"]) == 2
    assert "must be >= 1" in capsys.readouterr().err


@pytest.mark.gpu
def test_grid_runs_on_cuda():
    rates = run_escape_grid(["sgd", "adai"], [1.0, 4.0], B=8, particles=2000, max_steps=500,
                            seed=0, device="cuda", problem="stiff", spectators=(5.0,) * 3)
    assert (rates["device"] == "cuda").all()
    assert rates["n_escaped"].sum() > 0 and np.isfinite(rates["beta1_escape"][rates.rule == "adai"]).all()

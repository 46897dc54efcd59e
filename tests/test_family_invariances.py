"""Theory §6 invariances through the registry's real optimizers (quick sizes): every claim's
verdict, the negative controls (SGD and Adam are NOT invariant where the claim says so), and that
the checks fail when their premise is removed."""
import numpy as np
import pandas as pd
import pytest
import torch

import sandbox
from sandbox.toys import GradientStream, Reparametrised
from sandbox.verify.applicability import (claim_hyperparameters, exact_limit, rules_where,
                                          theory_rules)
from sandbox.verify.base import VerifyConfig
from sandbox.verify.families import invariances as fam


@pytest.fixture(scope="module")
def family_run(tmp_path_factory, _one_thread):
    """The whole family once at quick sizes: (rows, output folder)."""
    out = tmp_path_factory.mktemp("invariances")
    return fam.run(VerifyConfig(quick=True, out=out)), out


def _rows(family_run, claim):
    rows, _ = family_run
    rows = rows[rows["claim"] == claim]
    assert len(rows)
    return rows


def _assert_no_fail(rows):
    bad = rows[rows["verdict"] == "FAIL"]
    assert bad.empty, bad[["claim", "rule", "setting", "measured", "note"]].to_string()


def test_loss_scale_multiplies_every_update_by_c_to_the_k(family_run):
    rows = _rows(family_run, "invariance.adam_loss_scale")
    _assert_no_fail(rows)
    exact = rows[~rows["setting"].str.contains("v0=1/B")]
    assert set(exact["rule"]) == set(theory_rules()) and (exact["verdict"] == "PASS").all()
    forgetting = rows[rows["setting"].str.contains("v0=1/B")]
    assert set(forgetting["rule"]) == set(rules_where(lambda s: s.homogeneity == -1))


def test_adam_trajectories_ignore_the_loss_scale_and_sgd_does_not(family_run):
    rows = _rows(family_run, "invariance.adam_loss_scale.trajectory")
    _assert_no_fail(rows)
    assert set(rows["rule"]) == set(rules_where(lambda s: s.homogeneity == 0))
    curves = pd.read_csv(family_run[1] / "invariances" / "curves.csv")
    contrast = curves[curves["variant"].astype(str).str.contains("contrast")]
    # the first rule of degree 1 (SGD) under loss x 1000: O(1) relative deviation, not round-off
    k1 = contrast[contrast["variant"].str.startswith("k=1")]
    assert len(k1) and k1["measured"].max() > 0.1


def test_update_factor_under_diagonal_reparametrisation(family_run):
    rows = _rows(family_run, "invariance.rootfree_reparam.update_factor")
    _assert_no_fail(rows)
    adaptive = rows[rows["rule"].isin(rules_where(lambda s: s.momentum_kind == "adaptive"))]
    assert len(adaptive) and (adaptive["verdict"] == "REPORTED").all()
    assert (adaptive["measured"] > 1e-3).all()  # Adai is not elementwise: it really differs
    elementwise = rows[~rows["rule"].isin(adaptive["rule"])]
    assert (elementwise["verdict"] == "PASS").all()


def test_rootfree_trajectories_map_exactly_under_theta_equals_d_phi(family_run):
    rows = _rows(family_run, "invariance.rootfree_reparam")
    _assert_no_fail(rows)
    mapped = rows[rows["setting"].str.contains(r"v0->D\^2")]
    default = rows[rows["setting"].str.endswith("v0=1/B")]
    assert set(mapped["rule"]) == set(rules_where(lambda s: s.homogeneity == -1))
    assert (mapped["measured"] < fam.TOL_TRAJ).all()
    # without the mapped start the trajectories differ far beyond round-off (reported)
    assert (default["verdict"] == "REPORTED").all() and (default["measured"] > 1e-8).all()


def test_adam_is_not_invariant_to_a_diagonal_reparametrisation():
    """θ-space Adam updates under θ = D φ are D times the original (exactly, from step 1)."""
    d = 4
    D = torch.tensor([0.25, 0.5, 2.0, 4.0], dtype=torch.float64)
    stack = Reparametrised(GradientStream((d,), 3, seed=0), diags=[torch.ones(d), D])
    spec = sandbox.info("adam")
    upd, _ = fam._stream_updates(stack, "adam", claim_hyperparameters(spec, 0.01, **exact_limit(spec)),
                                 5, prime=False)
    ratio = (upd[:, 1] / upd[:, 0]).numpy()
    np.testing.assert_allclose(ratio, np.broadcast_to(D.numpy(), ratio.shape), rtol=1e-12)


def test_rootfree_preconditioner_tends_to_the_hessian_diagonal(family_run):
    rows = _rows(family_run, "invariance.rootfree_newton")
    _assert_no_fail(rows)
    assert (rows["verdict"] == "PASS").all()
    assert set(rows["rule"]) == set(rules_where(lambda s: s.homogeneity == -1))


def test_unmapped_start_breaks_the_exact_rootfree_loss_scale_law():
    """The premise matters: with v_0 = 1/B left as is, the c^-1 law fails at early steps."""
    stack = Reparametrised(GradientStream((4,), 3, seed=1), loss_scales=(1.0, 10.0))
    spec = sandbox.info("rfadamw")
    hp = claim_hyperparameters(spec, 1e-3, 1, **exact_limit(spec))
    upd, _ = fam._stream_updates(stack, "rfadamw", hp, 5, prime=False)
    ratio = (upd[:, 1].norm(dim=-1) / upd[:, 0].norm(dim=-1)).numpy()
    assert np.abs(ratio / 0.1 - 1).max() > 0.1
    stack = Reparametrised(GradientStream((4,), 3, seed=1), loss_scales=(1.0, 10.0))
    upd, _ = fam._stream_updates(stack, "rfadamw", hp, 5, prime=True)
    ratio = (upd[:, 1].norm(dim=-1) / upd[:, 0].norm(dim=-1)).numpy()
    np.testing.assert_allclose(ratio, 0.1, rtol=1e-12)


def test_plot_draws_one_png(family_run):
    rows, out = family_run
    paths = fam.plot(rows, VerifyConfig(quick=True, out=out))
    assert len(paths) == 1 and paths[0].stat().st_size > 10_000

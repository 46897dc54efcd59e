"""Section 3: weight-decay equilibria vs numpy simulations of SGD-family rules on the toy."""
import numpy as np
import pytest

from theory import (RuleTraits, equilibrium_angular_step, equilibrium_norm,
                    equilibrium_prediction, time_to_equilibrium, toy_update_size_sq)
from theory_rule_table import traits_for

D = 64


def _tang(w, x):
    return x - (x * w).sum(1, keepdims=True) / (w * w).sum(1, keepdims=True) * w


def _sim(rule, eta, lam, beta, T, r0, wd_ratio=0.1, R=64, seed=0):
    """Noise-driven toy g = P_perp(xi)/r; returns angles and norms, shape (T, R).

    sgdm: torch SGD with coupled L2 (inside the heavy ball); sgdp: official SGDP (buffer
    projected in place, decay lam wd_ratio/(1-beta)); sgdp_timm: buffer not projected.
    """
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((R, D))
    w *= r0 / np.linalg.norm(w, axis=1, keepdims=True)
    p, ang, nrm = np.zeros_like(w), [], []
    for _ in range(T):
        g = _tang(w, rng.standard_normal((R, D))) / np.linalg.norm(w, axis=1, keepdims=True)
        if rule == "sgdm":
            p = beta * p + g + lam * w
            w1 = w - eta * p
        else:
            p = beta * p + g
            if rule == "sgdp":
                p = _tang(w, p)
            w1 = w * (1 - eta * lam * wd_ratio / (1 - beta)) - eta * _tang(w, p)
        c = (w * w1).sum(1) / np.linalg.norm(w, axis=1) / np.linalg.norm(w1, axis=1)
        ang.append(np.arccos(np.clip(c, -1, 1)))
        nrm.append(np.linalg.norm(w1, axis=1))
        w = w1
    return np.array(ang), np.array(nrm)


def _rms(x):
    return np.sqrt((x ** 2).mean())


@pytest.mark.parametrize("rule,name,kw,eta,lam,beta", [
    ("sgdm", "sgd", {}, 0.1, 0.01, 0.0),
    ("sgdm", "sgd", {"momentum": 0.9}, 0.1, 0.01, 0.9),
    ("sgdp", "sgdp", {"momentum": 0.9}, 0.1, 0.01, 0.9),
])
def test_equilibrium_matches_simulation(rule, name, kw, eta, lam, beta):
    tr = traits_for(name, **kw)
    delta = equilibrium_angular_step(eta, lam, tr)
    r_star = equilibrium_norm(eta, lam, tr, d=D)
    tau = time_to_equilibrium(eta, lam, tr)
    ang, nrm = _sim(rule, eta, lam, beta, int(tau) + 600, r0=r_star)  # starts at r*
    assert _rms(ang[-600:]) == pytest.approx(delta, rel=0.01)
    assert _rms(nrm[-600:]) == pytest.approx(r_star, rel=0.005)


def test_table_values():
    eta, lam, b = 0.01, 0.1, 0.9
    assert equilibrium_angular_step(eta, lam, traits_for("sgd")) == pytest.approx(np.sqrt(2 * eta * lam))
    assert equilibrium_angular_step(eta, lam, traits_for("sgd", momentum=b)) == pytest.approx(np.sqrt(2 * eta * lam / (1 + b)))
    assert equilibrium_angular_step(eta, lam, traits_for("sgdp", momentum=b), 0.1) == pytest.approx(np.sqrt(2 * eta * lam * 0.1 / (1 - b)))
    assert equilibrium_angular_step(eta, lam, traits_for("adamw")) == pytest.approx(np.sqrt(2 * eta * lam * (1 - b) / (1 + b)))
    assert equilibrium_angular_step(eta, lam, traits_for("adamp"), 0.1) == pytest.approx(np.sqrt(2 * eta * lam * 0.1))
    assert equilibrium_norm(eta, lam, traits_for("adamw"), d=D) == pytest.approx(np.sqrt(eta * D / (2 * lam)))
    # projection raises Delta* by sqrt((1+b)/(1-b)) at wd_ratio = 1, in both families
    ratio = np.sqrt((1 + b) / (1 - b))
    assert (equilibrium_angular_step(eta, lam, traits_for("sgdp", momentum=b), 1.0)
            / equilibrium_angular_step(eta, lam, traits_for("sgd", momentum=b))) == pytest.approx(ratio)
    assert (equilibrium_angular_step(eta, lam, traits_for("adamp"), 1.0)
            / equilibrium_angular_step(eta, lam, traits_for("adamw"))) == pytest.approx(ratio)


def test_adamp_norm_includes_wd_ratio_and_projection_correction():
    eta, lam, b, wr = 0.01, 1.0, 0.9, 0.1
    delta = np.sqrt(2 * eta * lam * wr)
    corr = 1 + b * b * delta ** 2 / (1 - b) ** 2
    want = np.sqrt(eta * D * (1 - b) / (2 * lam * wr * (1 + b) * corr))
    assert equilibrium_norm(eta, lam, traits_for("adamp"), wr, d=D) == pytest.approx(want)


def test_projection_correction_with_unprojected_buffer():
    """timm-style SGDP (buffer not projected): r* is 3.6% below the uncorrected value."""
    eta, lam, b = 0.1, 0.01, 0.9
    tr = RuleTraits(1, b, "heavy_ball", projected=True, decay="decoupled", decay_scale=1 / (1 - b))
    r_star = equilibrium_norm(eta, lam, tr, d=D)
    naive = equilibrium_norm(eta, lam, tr, A=np.sqrt((D - 1) / (1 - b * b)))
    _, nrm = _sim("sgdp_timm", eta, lam, b, 900, r0=r_star)
    meas = _rms(nrm[-600:])
    assert meas == pytest.approx(r_star, rel=0.01)
    assert abs(meas / naive - 1) > 0.025


def test_refined_forms_at_large_decay():
    """eta lam = 0.05: leading order is 0.6% off in r*, the exact forms are not."""
    eta, lam = 0.5, 0.1
    tr = traits_for("sgd")
    e = equilibrium_prediction(eta, lam, tr, d=D, refined=True)
    ang, nrm = _sim("sgdm", eta, lam, 0.0, 600, r0=e.norm)
    assert _rms(ang[-400:]) == pytest.approx(e.angular_step, rel=0.01)
    assert _rms(nrm[-400:]) == pytest.approx(e.norm, rel=0.003)


def test_relaxation_time_sgd():
    eta, lam = 0.1, 0.02
    tr = traits_for("sgd")
    tau = time_to_equilibrium(eta, lam, tr)
    assert tau == pytest.approx(1 / (4 * eta * lam))
    y_star = equilibrium_norm(eta, lam, tr, d=D, refined=True) ** 4
    _, nrm = _sim("sgdm", eta, lam, 0.0, int(2 * tau) + 1, r0=(3 * y_star) ** 0.25, R=128)
    for k in (1, 2):
        y = (nrm[int(k * tau) - 1] ** 4).mean()
        assert y == pytest.approx(y_star + 2 * y_star * np.exp(-k), rel=0.05)


def test_time_constants_and_spec_corrections():
    eta, lam, b = 0.01, 0.1, 0.9
    assert time_to_equilibrium(eta, lam, traits_for("adamw")) == pytest.approx(1 / (2 * eta * lam))
    assert time_to_equilibrium(eta, lam, traits_for("sgd", momentum=b)) == pytest.approx((1 - b) / (4 * eta * lam))
    assert time_to_equilibrium(eta, lam, traits_for("sgdp", momentum=b), 0.1) == pytest.approx((1 - b) / (4 * eta * lam * 0.1))
    assert time_to_equilibrium(eta, lam, traits_for("adamp"), 0.1) == pytest.approx(5 / (eta * lam))
    t = time_to_equilibrium(eta, lam, traits_for("adamw"), r0=1.0, r_star=2.0, tol=0.01)
    assert t == pytest.approx(500 * np.log(3 / (0.01 * 4)))  # y = r^2 for k = 0


def test_no_equilibrium_cases_have_reasons():
    v, why = equilibrium_angular_step(1e-3, 1e-2, traits_for("adam"), return_reason=True)
    assert np.isnan(v) and "gradient norm" in why
    v = equilibrium_angular_step(1e-3, 1e-2, traits_for("adam"), d=D, grad_norm_unit=np.sqrt(D - 1))
    assert np.isfinite(v)
    e = equilibrium_prediction(0.1, 1e-3, traits_for("adai"))
    assert np.isnan(e.angular_step) and e.status == "open"
    e = equilibrium_prediction(1e-3, 0.1, traits_for("rfadamw"), A=2.0)
    assert e.angular_step == pytest.approx(np.arctan(2e-3 / (1 - 1e-4)))
    assert e.norm_growth_factor == pytest.approx((1 - 1e-4) ** 2 + 19 * 4e-6)
    assert np.isnan(equilibrium_angular_step(0.1, 1e-2, traits_for("sgd", momentum=0.9, project=True)))
    assert np.isnan(equilibrium_angular_step(0.1, 0.0, traits_for("sgd")))


def test_toy_update_size_projected_buffer_factor():
    tr = traits_for("sgdp", momentum=0.9)
    a2 = toy_update_size_sq(tr, D, angular_step=0.1)
    assert a2 == pytest.approx((D - 1) / (1 - 0.81 * (1 - 0.01)))

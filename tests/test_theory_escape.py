"""Section 5: escape-time laws, temperatures and the Kramers helper."""
import numpy as np
import pytest

from theory import (effective_temperature, exact_mfpt_1d, kramers_escape_steps, kramers_escape_time,
                    noisy_quadratic_stationary_variance, predicted_log_escape_time,
                    predicted_sharpness_law, quartic_double_well)
from theory_rule_table import traits_for


@pytest.mark.parametrize("family,law,expo", [("sgd", "1/k", -1.0), ("heavy_ball", "1/k", -1.0),
                                             ("adam", "1/sqrt(k)", -0.5), ("adai", "1/k", -1.0),
                                             ("rootfree", "k^0", 0.0)])
def test_sharpness_laws(family, law, expo):
    out = predicted_sharpness_law(family)
    assert out["law"] == law and out["exponent"] == expo
    assert predicted_sharpness_law(traits_for({"sgd": "sgd", "heavy_ball": "sgd", "adam": "adam",
                                               "adai": "adai", "rootfree": "rfadamw"}[family]))["exponent"] == expo


def test_log_escape_time_values_and_slopes():
    B, eta, dL, beta = 32, 0.1, 0.5, 0.9
    H = np.array([1.0, 4.0, 16.0])
    np.testing.assert_allclose(predicted_log_escape_time("sgd", H, B, eta, dL), 2 * B * dL / (eta * H))
    np.testing.assert_allclose(predicted_log_escape_time("heavy_ball", H, B, eta, dL, beta=beta),
                               2 * B * (1 - beta) * dL / (eta * H))
    np.testing.assert_allclose(predicted_log_escape_time("adam", H, B, eta, dL), 2 * np.sqrt(B) * dL / (eta * np.sqrt(H)))
    np.testing.assert_allclose(predicted_log_escape_time("adai", H, B, eta, dL), 2 * B * dL / (eta * H))
    np.testing.assert_allclose(predicted_log_escape_time("rootfree", H, B, eta, dL), 2 * B * dL / eta)
    lam = 0.3
    np.testing.assert_allclose(predicted_log_escape_time("rootfree", H, B, eta, dL, damping=lam),
                               2 * B * dL / eta + 2 * B * dL * lam / (eta * H))
    for fam in ("sgd", "adam", "rootfree"):
        law = predicted_sharpness_law(fam, B, eta, dL, damping=lam)
        fit = law["slope"] * H ** law["exponent"] + law["intercept"] + law["inverse_H_slope"] / H
        np.testing.assert_allclose(fit, predicted_log_escape_time(fam, H, B, eta, dL, damping=lam))
    # Xie et al.'s path mix with the saddle curvature
    mix = predicted_log_escape_time("sgd", 4.0, B, eta, dL, H_b=-2.0, s=0.3)
    assert mix == pytest.approx(2 * B * dL / eta * (0.3 / 4.0 + 0.7 / 2.0))


@pytest.mark.parametrize("name,kw", [("sgd", {}), ("sgd", {"momentum": 0.9}), ("adam", {}), ("rfadamw", {})])
def test_temperature_matches_stationary_variance(name, kw):
    """T = H s to leading order in eta: the escape heuristics rest on the noisy quadratic."""
    H, B, eta = np.array([0.2, 1.0, 5.0]), 16, 1e-4
    tr = traits_for(name, **kw)
    s = noisy_quadratic_stationary_variance(H, B, eta, tr)
    fam = {"sgd": "heavy_ball" if kw else "sgd", "adam": "adam", "rfadamw": "rootfree"}[name]
    T = effective_temperature(H, B, eta, fam, beta=kw.get("momentum", 0.0))
    np.testing.assert_allclose(H * s, T, rtol=2e-3)


def test_kramers_approaches_exact_mfpt():
    H_a, dL = 8.0, 1.0
    U, a, H_b = quartic_double_well(H_a, dL)
    assert U(a) == pytest.approx(0.0) and U(0.0) == pytest.approx(dL)
    errs = []
    for ratio in (5.0, 10.0, 20.0):
        T = dL / ratio
        exact = exact_mfpt_1d(U, T, -a, a, -4 * a)
        errs.append(abs(kramers_escape_time(dL, T, H_a, H_b) / exact - 1))
    assert errs[2] < errs[1] < errs[0] and errs[1] < 0.1 and errs[2] < 0.05


def test_kramers_escape_steps_sgd():
    dL, H_a, H_b, B, eta = 0.2, 4.0, -2.0, 8, 0.05
    T = eta * H_a / (2 * B)
    want = 2 * np.pi / (eta * np.sqrt(H_a * 2.0)) * np.exp(dL / T)
    assert kramers_escape_steps(dL, H_a, H_b, B, eta) == pytest.approx(want)
    assert np.log(want) == pytest.approx(predicted_log_escape_time("sgd", H_a, B, eta, dL)
                                         + np.log(2 * np.pi / (eta * np.sqrt(8.0))))
    with pytest.raises(ValueError):
        kramers_escape_steps(dL, H_a, H_b, B, eta, "adam")

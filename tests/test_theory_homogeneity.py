"""Section 2: momentum factor and the 1/sqrt(t) asymptote on the noise-driven toy (numpy)."""
import numpy as np
import pytest

from theory import (RuleTraits, angular_step_asymptote, angular_step_curve, momentum_factor,
                    momentum_filter_sums, norm_growth_exponent, rootfree_angular_step,
                    rootfree_crossover_radius, rootfree_norm, toy_update_size)
from theory_rule_table import traits_for


def _tang(w, x):
    return x - (x * w).sum(1, keepdims=True) / (w * w).sum(1, keepdims=True) * w


def _angles(w, w1):
    c = (w * w1).sum(1) / np.linalg.norm(w, axis=1) / np.linalg.norm(w1, axis=1)
    return np.arccos(np.clip(c, -1, 1))


def _toy(traits, eta, T, r0, R=64, d=64, seed=0):
    """Noise-driven toy without decay; returns per-step angles (T, R)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((R, d))
    w *= r0 / np.linalg.norm(w, axis=1, keepdims=True)
    p, out, b = np.zeros_like(w), [], traits.beta
    for _ in range(T):
        g = _tang(w, rng.standard_normal((R, d))) / np.linalg.norm(w, axis=1, keepdims=True)
        p = b * p + ((1 - b) * g if traits.momentum_kind == "ema" else g)
        if traits.project_buffer:
            p = _tang(w, p)
        u = _tang(w, p) if traits.projected else p
        w1 = w - eta * u
        out.append(_angles(w, w1))
        w = w1
    return np.array(out)


def test_momentum_factor_heavy_ball_equals_ema_and_filter_sums():
    hb = RuleTraits(1, 0.9, "heavy_ball")
    ema = RuleTraits(1, 0.9, "ema")
    assert momentum_factor(hb) == pytest.approx(19.0)
    assert momentum_factor(ema) == pytest.approx(19.0)
    assert momentum_factor(RuleTraits(1, 0.9, "heavy_ball", projected=True)) == 1.0
    assert momentum_factor(RuleTraits(1)) == 1.0
    nest = RuleTraits(1, 0.9, "heavy_ball", nesterov=True)
    h = np.r_[1.9, 0.9 ** np.arange(2, 400)]  # torch Nesterov filter, summed directly
    assert momentum_filter_sums(nest) == pytest.approx((h.sum(), (h * h).sum()), rel=1e-12)
    assert momentum_factor(nest) == pytest.approx(h.sum() ** 2 / (h * h).sum(), rel=1e-12)


@pytest.mark.parametrize("name,kw", [("sgd", {}), ("sgd", {"momentum": 0.9}),
                                     ("sgdp", {"momentum": 0.9})])
def test_asymptote_on_noise_toy(name, kw):
    tr = traits_for(name, **kw)
    eta, T, d = 1.0, 1000, 64
    A = toy_update_size(tr, d)
    r0 = np.sqrt(eta * A / 0.1)  # start in the small-angle regime (Delta_0 = 0.1)
    ang = _toy(tr, eta, T, r0)
    t = np.arange(850, 1000)
    meas = np.sqrt((ang[t] ** 2).mean())
    asym = np.sqrt((angular_step_asymptote(t, tr) ** 2).mean())
    curve = np.sqrt((angular_step_curve(t, r0, eta, A, tr) ** 2).mean())
    assert meas == pytest.approx(asym, rel=0.10)
    assert meas == pytest.approx(curve, rel=0.03)


def test_asymptote_values_and_growth_exponents():
    t = 5000.0
    assert angular_step_asymptote(t, traits_for("sgd")) == pytest.approx(1 / np.sqrt(2 * t))
    assert angular_step_asymptote(t, traits_for("sgdp", momentum=0.9)) == pytest.approx(1 / np.sqrt(2 * t))
    assert angular_step_asymptote(t, traits_for("adam")) == pytest.approx(1 / np.sqrt(19 * t))
    assert angular_step_asymptote(t, traits_for("adamp")) == pytest.approx(1 / np.sqrt(t))
    assert np.isnan(angular_step_asymptote(t, traits_for("rfadamw")))
    assert norm_growth_exponent(traits_for("sgd")) == 0.25
    assert norm_growth_exponent(traits_for("adam")) == 0.5
    assert norm_growth_exponent(traits_for("rfadamw")) == np.inf


def test_rootfree_helpers():
    assert rootfree_norm(100, 2.0, 1e-2, 3.0) == pytest.approx(2.0 * (1 + 9e-4) ** 50)
    assert rootfree_norm(10, 1.0, 0.1, 1.0, lam=0.5, M=2.0) == pytest.approx((0.95**2 + 0.02) ** 5)
    assert rootfree_angular_step(0.01, 2.0, lam=1.0) == pytest.approx(np.arctan(0.02 / 0.99))
    assert rootfree_crossover_radius(8.0, 64, 1e-4) == pytest.approx(100.0)


def test_traits_for_presets():
    s = traits_for("sgdp", momentum=0.9)
    assert s.projected and s.project_buffer and s.decay_scale == pytest.approx(10.0)
    assert not traits_for("sgdp", momentum=0.9, nesterov=True).project_buffer
    assert traits_for("adamp").projected and not traits_for("adamp").project_buffer
    assert traits_for("rfrmsprop").l2_preconditioned is False
    assert traits_for("adaiwp").projected and traits_for("adaiwp").decay == "decoupled"
    with pytest.raises(KeyError):
        traits_for("lion")

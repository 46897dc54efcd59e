"""Rotational variants (Kosson, Messmer & Jaggi, ICML 2024, "Rotational Equilibrium"; spec
theory.md section 7): the angular update of every neuron is its equilibrium value from step 1.

The rotational step (sandbox.optim.stages.rotational.rotate) per neuron (row of length L):
d is made orthogonal to the weight, U_t = EMA_undf(||d||^2) bias-corrected, u_bar = sqrt(U_t),
w' = w - rho n d/u_bar, then (zero_mean) centred and rescaled to the recorded norm n. With d
orthogonal to w and w centred, centring removes only d's mean, so exactly

    tan Delta_t = rho ||d_c|| / u_bar,   d_c = d - mean(d)   (d_c when zero_mean, else d)

and at t = 1, u_bar = ||d_1||: Delta_1 = arctan(rho ||d_c||/||d||) for every neuron; without
zero_mean Delta_1 = arctan(rho) exactly. Later steps follow ||d_t||/u_bar_t: around 1 for Lion's
signs and momentum-free SGD, but ABOVE 1 for ~1/(1-undf) steps when the base direction carries
momentum (its energy builds up over 1/(1-beta) steps while u_bar averages over 1/(1-undf)):
rotational_startup_factor, up to +21% at beta = 0.9 (a measured refutation of a strict 'no
transient'; still no relaxation over the base rule's 1/(2 eta lam) steps).
rho is the base rule's equilibrium angular update (theory.equilibrium): AdamW's
sqrt(2 eta lam (1-b1)/(1+b1)), SGDM's sqrt(2 eta lam/(1+mu)); RV-Lion's is Kosson et al.'s
linearised Lion value (theory.sign_trust.kosson_lion_rotation), 0.7% above the arcsine-law
equilibrium of plain Lion (theory.sign_trust.lion_equilibrium) at the default betas.
"""
from __future__ import annotations

import math

import numpy as np

from .equilibrium import equilibrium_angular_step
from .homogeneity import RuleTraits, angular_step_curve
from .sign_trust import kosson_lion_rotation, lion_equilibrium

SOURCE = "Kosson, Messmer & Jaggi, ICML 2024; official epfml/rotational-optimizers"


def rotational_target(rule, lr, weight_decay, betas=(0.9, 0.999), momentum=0.0):
    """rho of RV-AdamW / RV-SGD / RV-Lion (the official code's expressions). Status: published."""
    if rule == "rvadamw":
        b1 = betas[0]
        return math.sqrt(2 * lr * weight_decay * (1 - b1) / (1 + b1))
    if rule == "rvsgd":
        return math.sqrt(2 * lr * weight_decay / (1 + momentum))
    if rule == "rvlion":
        return kosson_lion_rotation(lr, weight_decay, *betas)
    raise ValueError(f"unknown rotational rule {rule!r}: expected 'rvadamw', 'rvsgd' or 'rvlion'")


def base_equilibrium(rule, lr, weight_decay, betas=(0.9, 0.999), momentum=0.0, d=64):
    """The base rule's equilibrium rms angular update (what rho encodes), from theory.equilibrium
    (AdamW, torch SGDM with L2 in the buffer) and theory.sign_trust (Lion, arcsine law).
    rho equals it for rvadamw and rvsgd; for rvlion it is the linearised value. Status: as the
    base rule's (published for AdamW/SGDM, derived for Lion)."""
    if rule == "rvadamw":
        tr = RuleTraits(0, betas[0], "ema", decay="decoupled", name="adamw")
        return float(equilibrium_angular_step(lr, weight_decay, tr))
    if rule == "rvsgd":
        tr = RuleTraits(1, momentum, "heavy_ball" if momentum else "none", decay="coupled", name="sgd")
        return float(equilibrium_angular_step(lr, weight_decay, tr))
    if rule == "rvlion":
        return lion_equilibrium(lr, weight_decay, d, *betas)[0]
    raise ValueError(f"unknown rotational rule {rule!r}")


def centring_factor(row_length, zero_mean=True):
    """kappa = rms ||d_c||/||d|| for a direction with i.i.d. elements: sqrt(1 - 1/L) when the
    step is centred (zero_mean), 1 otherwise. Status: exact for i.i.d. isotropic directions."""
    return math.sqrt(1.0 - 1.0 / row_length) if zero_mean else 1.0


def first_step_angle(rho, d_norm, d_centred_norm=None, eps=0.0):
    """Delta_1 = arctan(rho ||d_c||/(eps + ||d||)) per neuron (u_bar_1 = ||d_1||; ``eps`` is the
    rule's eps added to u_bar); without zero_mean pass d_centred_norm=None (||d||). Requires the
    weights centred at initialisation when zero_mean (otherwise step 1 also centres w, which adds
    its own angle). Status: exact."""
    num = np.asarray(d_norm if d_centred_norm is None else d_centred_norm, dtype=float)
    return np.arctan(rho * num / (eps + np.asarray(d_norm, dtype=float)))


def rotational_startup_factor(t, beta=0.0, undf=0.99):
    """f_t = sqrt(E||d_t||^2/U_t): how far the rms update sits from rho at step t (1-based).

    The base direction's energy builds up with its momentum, E||d_t||^2 ∝ e_t = 1 - beta^{2t}
    (heavy ball, or the official RV-AdamW's m/(sqrt(v_hat) + eps), m without bias correction;
    e_t = 1 for Lion's signs and momentum-free SGD), while u_bar^2 is the bias-corrected EMA
    U_t = sum_s (1-undf) undf^{t-s} e_s/(1 - undf^t), which lags: f_1 = 1, then f_t > 1 for
    ~1/(1-undf) steps (max 1.21 at t = 5 for beta = 0.9, undf = 0.99; 1.10 at t = 20), then -> 1.
    Status: derived here. It refutes a strict reading of 'no transient' for the momentum
    variants (an overshoot of up to 21%, not the base rule's relaxation over 1/(2 eta lam))."""
    t = np.atleast_1d(np.asarray(t, dtype=int))
    n = int(t.max())
    e = 1.0 - beta ** (2 * np.arange(1, n + 1))
    u_acc, f = 0.0, np.empty(n)
    for i in range(n):
        u_acc = undf * u_acc + (1 - undf) * e[i]
        f[i] = math.sqrt(e[i] / (u_acc / (1 - undf ** (i + 1))))
    return f[t - 1]


def rotational_angular_step(rho, row_length, zero_mean=True, t=None, beta=0.0, undf=0.99):
    """rms Delta_t = arctan(rho kappa f_t) per neuron, kappa = centring_factor, f_t =
    rotational_startup_factor (1 for Lion and momentum-free SGD; t=None: the long-run value f = 1).
    Further corrections: E[||d||^2/u_bar^2] - 1 from the EMA's sampling noise, O((1-undf) CV^2)
    (< 1% for rows of >= 16 elements). Status: derived (Kosson et al. publish Delta = rho from
    step 1; exact at t = 1, and for momentum-free directions at every t). Regime: weights centred
    at initialisation when zero_mean; recorded norm n > 0."""
    f = 1.0 if t is None else rotational_startup_factor(t, beta, undf)
    out = np.arctan(rho * centring_factor(row_length, zero_mean) * f)
    return float(out) if t is None else out


def base_rule_transient(t, r0, lr, weight_decay, d, betas=(0.9, 0.999)):
    """For contrast: AdamW's rms Delta_t from r0 (theory.homogeneity.angular_step_curve with the
    toy's A = sqrt(d (1-b1)/(1+b1)), lam_eff = lam): it relaxes to rho over ~1/(2 eta lam)
    steps, which the rotational variant skips. Status: derived (as angular_step_curve)."""
    b1 = betas[0]
    tr = RuleTraits(0, b1, "ema", decay="decoupled", name="adamw")
    return angular_step_curve(t, r0, lr, math.sqrt(d * (1 - b1) / (1 + b1)), tr, weight_decay)

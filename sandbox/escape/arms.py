r"""The optimizer settings under test ("arms") and their theory predictions (:mod:`theory.escape`).

An arm is a registry rule with fixed hyperparameters, and the family name under which
:mod:`theory.escape` predicts its escape law:

========= =================================== ============ ===================================
arm        rule and hyperparameters            family       predicted exponent E = ΔL/T
========= =================================== ============ ===================================
sgd        ``sgd``                             sgd          2BΔL/(ηH_a)
momentum   ``sgd``, momentum 0.9 (torch form)  heavy_ball   2B(1−μ)ΔL/(ηH_a)
adam       ``adam`` (defaults)                 adam         2√B·ΔL/(η√H_a)
adai       ``adai`` (defaults, β = (0.1, 0.99)) adai        2BΔL/(ηH_a)
rfadamw    ``rfadamw``, β = (0.9, 0.99),       rootfree     2BΔL(H_a + λ)/(ηH_a) → 2BΔL/η
           batch_size = B
========= =================================== ============ ===================================

**Learning rates.** The rules' lr scales differ (Adai's is SGD-scale, Adam's multiplies a
normalised direction, heavy ball's effective step is lr/(1−μ), root-free Adam's is lr/H), so one
lr for all would put some rules' escapes at τ ~ 1 step and others' beyond any cap. Each arm's lr
is *calibrated from the theory*: ``η = E(η = 1)/E_ref`` makes the predicted exponent equal
``E_ref`` at the reference point (k_ref, B_ref) for every rule (E ∝ 1/η for all of them). So all
rules escape on comparable time scales at the reference point and the k, B and η sweeps move
each rule's exponent by its own law. (The calibration uses only the prediction's 1/η scaling,
which the η sweep checks.)

**Root-free β2.** rfadamw starts its second moment at ``v = 1/B`` (so ``B·v = 1``), whereas in the
well ``B·v → H_a = k·h0``. With the default β2 = 0.999 this start is forgotten only after
several thousand steps, longer than the whole run; β2 = 0.99 forgets it within ~500 steps (the
burn-in), so the measured rate is the quasi-stationary one the theory describes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from theory import escape as escape_theory

from .laws import LAWS, regressor


@dataclass(frozen=True)
class Arm:
    """A registry rule with fixed hyperparameters, and its theory family."""

    name: str
    rule: str
    hyper: dict = field(default_factory=dict)
    family: str = "sgd"
    beta: float = 0.0  # heavy-ball coefficient (theory's gain 1/(1−β)); 0 otherwise
    takes_batch_size: bool = False  # the rule's batch_size hyperparameter is set to B
    damping: float = 0.0  # root-free damping λ (theory)
    eps: float = 0.0  # Adam's eps (theory)
    impl: str = "auto"  # the optimizer implementation stepping the particles

    def hyperparameters(self, batch_size: float) -> dict:
        hp = dict(self.hyper)
        if self.takes_batch_size:
            hp["batch_size"] = int(batch_size) if float(batch_size).is_integer() else batch_size
        return hp

    def exponent(self, H_a, B, eta, barrier):
        """Predicted ``log τ`` exponent ``ΔL/T(H_a)`` (:func:`theory.escape.predicted_log_escape_time`)."""
        return escape_theory.predicted_log_escape_time(
            self.family, H_a, B, eta, barrier, beta=self.beta, damping=self.damping, eps=self.eps)

    def temperature(self, H_a, B, eta):
        return escape_theory.effective_temperature(H_a, B, eta, self.family, beta=self.beta,
                                                   damping=self.damping, eps=self.eps)

    def predicted_neg_log_rate(self, H_a, B, eta, barrier):
        """Kramers' ``log τ`` in steps (= predicted −log Γ per step), prefactor included.

        The rule is overdamped Langevin with mobility ``μ = η·h1/P`` per step and temperature
        ``T = μ·H_a/(2B)`` (theory.escape), so ``μ = 2BT/H_a``; ``H_b = −H_a/2`` (the quartic)."""
        H_a = np.asarray(H_a, dtype=float)
        T = self.temperature(H_a, B, eta)
        tau = escape_theory.kramers_escape_time(barrier, T, H_a, -H_a / 2.0,
                                                mobility=2.0 * np.asarray(B) * T / H_a)
        return np.log(tau)

    def calibrated_lr(self, exponent: float, H_a: float, B: float, barrier: float) -> float:
        """The lr at which the predicted exponent at (H_a, B) equals ``exponent``."""
        if not exponent > 0:
            raise ValueError(f"exponent={exponent!r}: the target ΔL/T must be > 0")
        return float(self.exponent(H_a, B, 1.0, barrier)) / exponent


ARMS = {
    "sgd": Arm("sgd", "sgd"),
    "momentum": Arm("momentum", "sgd", {"momentum": 0.9}, family="heavy_ball", beta=0.9),
    "adam": Arm("adam", "adam", family="adam", eps=1e-8),
    # Adai's per-tensor reference loop steps one (R, 1 + D) replica tensor 1.4-3x faster than its
    # fast path (measured, 2026-12, 15,000-21,000 particles); the two are tested equal
    "adai": Arm("adai", "adai", family="adai", impl="reference"),
    "rfadamw": Arm("rfadamw", "rfadamw", {"betas": (0.9, 0.99)}, family="rootfree",
                   takes_batch_size=True, damping=1e-4),
}


def get_arm(name: str) -> Arm:
    if name not in ARMS:
        raise ValueError(f"unknown escape arm {name!r}; choose from {', '.join(ARMS)}")
    return ARMS[name]


def predicted_laws(arms, k_ref: float, B_ref: float, lr_factor: float = 1.0, *, barrier: float,
                   h0: float, exponent_ref: float) -> "pd.DataFrame":
    """The predicted law per (arm, variable): exponent α of ``E ∝ x_α`` read off the theory by a
    finite difference (factor 2) around the reference point, the nearest candidate law, the
    coefficient ``slope_pred`` of x_α in E (var in the sandbox's units: k, B, lr) and the claim's
    status and citation (:func:`theory.escape.predicted_sharpness_law`)."""
    import pandas as pd

    rows = []
    for name in arms:
        arm = get_arm(name)
        lr = lr_factor * arm.calibrated_lr(exponent_ref, k_ref * h0, B_ref, barrier)
        law = escape_theory.predicted_sharpness_law(arm.family, beta=arm.beta)

        def E(k=k_ref, B=B_ref, eta=lr):
            return float(arm.exponent(k * h0, B, eta, barrier))

        alphas = {"k": -np.log2(E(k=2 * k_ref) / E()), "B": np.log2(E(B=2 * B_ref) / E()),
                  "eta": -np.log2(E(eta=2 * lr) / E())}
        ref = {"k": k_ref, "B": B_ref, "eta": lr}
        for var, a in alphas.items():
            laws = LAWS[var]
            nearest = min(laws, key=lambda n: abs(laws[n] - a))
            x = float(regressor(var, ref[var], laws[nearest]))
            rows.append({"rule": name, "variable": var, "alpha_pred": float(a), "law_pred": nearest,
                         "slope_pred": E() / x if laws[nearest] != 0 else 0.0,
                         "status": law["status"], "citation": law["citation"],
                         "family": arm.family})
    return pd.DataFrame(rows)

r"""Per-layer effective (angular) step of a comparison's reported runs against ``theory``.

For each scale-invariant layer (ground truth from the architecture, recorded by
:mod:`sandbox.probes`) the probes give Δ_t = angle(w_t, w_{t+1}) and r_t = ‖w_t‖. Theory
(docs/theory.md §2–3; :func:`theory.angular_step_curve`) predicts, for an update homogeneous of degree k in
the gradient with scale-free size A (‖u‖ = A·r^{−k}), momentum factor M and effective decay λ_eff:

.. math::
    y_t = r_t^{2(k+1)} = y^* + (y_0 - y^*)\,e^{-2(k+1)\eta\lambda_\text{eff} t},\quad
    y^* = \frac{M\eta A^2}{2\lambda_\text{eff}},\qquad
    \Delta_t = \arctan\big(\eta A / r_t^{k+1}\big)

(λ_eff = 0: y_t = y_0 + (k+1)Mη²A²t, so Δ_t → 1/sqrt((k+1)M t)). With decay the curve tends to
the equilibrium Δ* = sqrt(2ηλ_eff/M), which does not depend on A. Here r_0 is the layer's measured
initial norm and A the median over the run of the measured tan(Δ_t)·r_t^{k+1}/η — the one input
that is fitted, so the check is of the norm dynamics and of Δ*, not of the gradient scale. The
theory assumes noise-dominated gradients; in a real net A drifts as the loss falls. Adai's M uses
the isotropic β1 = 1 − β0 (a heuristic: its prediction is open); Adam with L2 has no fixed Δ*
(λ_eff depends on the gradient scale), so no prediction is drawn.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

import theory
from sandbox.optim.traits import rule_traits

from .store import write_csv


def load_probes(out: Path, recs: pd.DataFrame, rule: str) -> pd.DataFrame:
    """The probe records of the scale-invariant layers of a rule's reported runs."""
    ids = recs[(recs["phase"] != "tune") & (recs["rule"] == rule)]["run_id"]
    files = [out / "probes" / f"{r}.csv" for r in ids if (out / "probes" / f"{r}.csv").exists()]
    if not files:
        return pd.DataFrame()
    probes = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    return probes[probes["scale_invariant"].astype(bool)]


def predicted_curve(rule: str, hp: dict, layer_probes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, str]:
    """(steps, predicted rms Δ at those steps, what the prediction is) for one layer's records
    (all seeds); NaN where theory has no prediction. ``hp``: {name: [value, provenance]}."""
    steps = np.sort(layer_probes["step"].unique()).astype(float)
    nan = np.full(len(steps), np.nan)
    values = {k: (tuple(v[0]) if isinstance(v[0], list) else v[0]) for k, v in hp.items()}
    try:
        traits = rule_traits(rule, **values)
    except ValueError:  # not a registered rule
        return steps, nan, "no traits for this rule"
    eta, lam = float(values["lr"]), float(values.get("weight_decay", 0.0))
    lam_eff = theory.effective_decay(lam, traits, float(values.get("wd_ratio", 0.1)))
    if not np.isfinite(lam_eff):
        return steps, nan, "no fixed Δ* (Adam with L2)"
    k = float(traits.homogeneity)
    by_step = layer_probes.groupby("step")
    r0 = float(by_step["norm"].mean().iloc[0])
    a = np.tan(layer_probes["delta"]) * layer_probes["norm"] ** (k + 1) / eta
    A = float(np.nanmedian(a))
    pred = theory.angular_step_curve(steps, r0, eta, A, traits, lam_eff)
    kind = "with decay, toward Δ*" if lam_eff > 0 else "no decay"
    if traits.adaptive_inertia:
        kind += ", open (isotropic β1)"
    return steps, np.asarray(pred, dtype=float), kind


def equilibrium(rule: str, hp: dict) -> tuple[float, float]:
    """(Δ*, relaxation time in steps) of theory.equilibrium_prediction; NaN where none exists."""
    try:
        values = {k: (tuple(v[0]) if isinstance(v[0], list) else v[0]) for k, v in hp.items()}
        e = theory.equilibrium_prediction(float(values["lr"]), float(values.get("weight_decay", 0.0)),
                                          rule_traits(rule, **values),
                                          float(values.get("wd_ratio", 0.1)))
        return float(e.angular_step), float(e.time_constant)
    except (KeyError, ValueError):
        return float("nan"), float("nan")


def effective_step_table(out: str | Path, recs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (rule, scale-invariant layer): rms of the measured Δ over the second half of the run
    (all seeds), the prediction's rms over the same steps, their ratio, and the equilibrium Δ*
    with its relaxation time τ (steps) where decay makes one (a run much shorter than τ is still
    on its way); written to ``out/effective_step.csv``."""
    out = Path(out)
    if recs is None:
        recs = pd.DataFrame([json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))])
    rows = []
    for rule in recs[recs["phase"] != "tune"]["rule"].unique():
        probes = load_probes(out, recs, rule)
        if probes.empty:
            continue
        hp = recs[(recs["phase"] != "tune") & (recs["rule"] == rule)]["hp"].iloc[0]
        delta_star, tau = equilibrium(rule, hp)
        for layer, lp in probes.groupby("layer", sort=False):
            steps, pred, kind = predicted_curve(rule, hp, lp)
            late = steps >= steps.max() / 2
            measured = lp[lp["step"] >= steps.max() / 2]["delta"]
            rows.append({"rule": rule, "layer": layer, "d": int(lp["d"].iloc[0]),
                         "measured_rms_delta": float(np.sqrt((measured ** 2).mean())),
                         "predicted_rms_delta": float(np.sqrt(np.mean(pred[late] ** 2))),
                         "prediction": kind, "from_step": int(steps[late].min()),
                         "to_step": int(steps.max()), "equilibrium_delta": delta_star,
                         "equilibrium_tau_steps": tau})
    table = pd.DataFrame(rows)
    if not table.empty:
        table["ratio"] = table["measured_rms_delta"] / table["predicted_rms_delta"]
        write_csv(table, out / "effective_step.csv")
    return table

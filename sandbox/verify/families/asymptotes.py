r"""Theory §2: the effective (angular) step without weight decay, on the noise-driven toy.

Every registered rule runs through ``sandbox.create`` on R replicas of the noise-driven toy
(g = Π⊥(ξ)/‖w‖, d = 64, item shape (1, d) so that projections act), selected by its traits:

k > −1 (``asymptote.*`` power-law claims; M = theory.momentum_factor of the rule's traits):
- ``asymptote.delta_limit`` — Δ_t → 1/sqrt((k+1)·M·t): rms Δ over the last 20% of the run vs
  the asymptote at the same steps (10%). M = (1+β)/(1−β) for heavy ball AND EMA (the AdamP
  corollary's factor is the same for both: the EMA's (1−β) scales the step and the growth
  alike; measured directly below), M = 1 projected; Adai: M = (2−β0)/β0
  (theory.homogeneity.adai_momentum_factor: the mean of v̂_i/v̄ is exactly 1, so the
  mean inertia is 1−β0; derived here).
- ``asymptote.momentum_factor`` — M measured as (growth of E r²)/(Σ_t E‖Δw_t‖²) over the last
  decade: the definition of M, free of the update size and of any lag (10%).
- ``asymptote.constant`` — slope of Δ_t^{-2} against t over the last 3/4 of the run (the
  transient offset t0 drops out of a slope) vs the same slope of the mean-field curve
  (theory.homogeneity.angular_step_mean_field), which tends to (k+1)M (10%). The
  mean field matters for projected rules that keep an unprojected buffer (AdamP, Adai+P):
  the buffer lags the rotating weight and the projection removes a fraction κΔ²/(1+κΔ²) of it,
  κ = β²/(1−β)² = 81 — the regime condition Δ ≪ 1−β of §2, quantified: their Δ^{-2} slope is
  (k+1)(1 − κ/t), 10% low at t ≈ 800.
- ``asymptote.exponent`` — fitted log-log slope of Δ_t over the last decade (95% OLS interval in
  the note; → −1/2, Arora, Li & Lyu 2019) vs the same fit on the mean-field curve with the
  fitted t0 (a finite-t slope is −t/(2(t+t0)), not −1/2) (absolute 0.05).
- ``asymptote.norm_growth`` — r^{2(k+1)} grows linearly in t: ratio of its late to early slope
  over the last decade vs the mean-field ratio (1 without projection lag) (10%).

k = −1 (root-free; theory.rootfree, derived here):
- ``asymptote.rootfree_delta`` / ``asymptote.rootfree_growth`` / ``asymptote.rootfree_A`` —
  without damping, Δ constant and r² × ρ per step, with A = ‖u‖/r (u the update before −η) from
  the rule's equations. CORRECTION: the catalogue's Δ = arctan(ηA), r_t = r_0(1+η²A²)^{t/2} with
  v converged (A² = γ²N²H2) misses (a) the momentum factor M in the growth (theory.homogeneity
  adds it) and (b) the LAG of v: r grows geometrically, so v (memory 1/(1−β2)) over-estimates
  E[g²] by c_v = (1−β2)/(1−β2ρ) and A shrinks by c_v — a fixed point in ρ. At the default
  rfrmsprop hyperparameters c_v ≈ 30 and the catalogue's Δ is 15× too large; the predictions here
  include the lag (both values are in the notes).
- ``asymptote.rootfree_exponent`` — fitted log-log slope of Δ_t ≈ 0 (absolute 0.05).
- ``asymptote.rootfree_crossover`` — with damping λ, Δ halves at the radius predicted by the
  quasi-static profile (10%); the catalogue's r_c = G/sqrt(dλ) and the ratio are in the note.
- ``asymptote.rootfree_profile`` — max |Δ_meas/Δ_profile(r) − 1| along the run (≤ 0.1).
- ``asymptote.rootfree_sgd_return`` — REPORTED: late log-log slope of Δ_t (→ −1/2 as B·v/λ → 0).

Lion, LAMB, LARS (size laws 'sign', 'trust_ratio'; §7): :mod:`.sign_trust_rows`.

Hyperparameters (in each row's ``setting``): lr sets the transient offset t0 ≈ 20 steps
(the asymptotes do not depend on it); heavy-ball momentum 0.9 (plain SGD also at 0); Adam-type
rules (k = 0) with β2 = 0.9 (quick) / 0.99 (full): the lag of v behind g² ∝ 1/r² ∝ 1/t delays
the asymptote by ~ln(qT)/q steps, q = 1−β2 (at the default 0.999, ~8% off at 20k steps — the
first simulation's "Adam within ~7% by 20k"; the full run adds a REPORTED row for it);
root-free β2 = 0.99 (lr_cov = 0.01), lr for a lag-free Δ of 0.01.

Intervals: every run has 8 replica groups; each measured value is recomputed with one group left
out and its 95% interval is the jackknife one (:mod:`sandbox.verify.intervals`). Power in quick
mode (64 replicas, 1,000 steps): the intervals are a few per cent wide, so the 10% claims are
decided (PASS) for every rule; the root-free slopes (tolerance 0.05) can straddle the band's edge
(INCONCLUSIVE) — full mode (256 replicas, 10,000 steps) halves the intervals.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

import sandbox
import theory
from sandbox.experiments import rootfree as rf
from sandbox.experiments.effective_step import (asymptote_lr, fit_inverse_square, fit_power_law,
                                                growth_linearity, late_window,
                                                leave_one_group_out, measured_momentum_factor,
                                                preconditioner_probe, run_noise_toy, series,
                                                step_squares, whole_run)
from sandbox.experiments.run_cache import cached, stable_seed
from sandbox.optim.traits import rule_traits
from sandbox.verify.applicability import theory_rules, toy_hyperparameters
from sandbox.verify.base import VerifyConfig
from sandbox.verify.intervals import jackknife_stat
from sandbox.verify.rows import (TidyLog, claim_selected, make_row, progress, rows_frame,
                                 setting_text)
from theory.homogeneity import angular_step_mean_field, projection_lag_coefficient
from . import sign_trust_rows

TITLE = "Effective step without weight decay (theory §2)"
NAME = "asymptotes"
VERSION = 3
GROUPS = 8  # replica groups of the jackknife intervals (sandbox.verify.intervals)
D, BETA, T0, RF_DELTA, RF_CROSS_DELTA = 64, 0.9, 20.0, 0.01, 0.015
POWER = ("asymptote.delta_limit", "asymptote.constant", "asymptote.exponent",
         "asymptote.momentum_factor", "asymptote.norm_growth")
GEOMETRIC = ("asymptote.rootfree_delta", "asymptote.rootfree_growth", "asymptote.rootfree_A",
             "asymptote.rootfree_exponent")
CROSSOVER = ("asymptote.rootfree_crossover", "asymptote.rootfree_profile",
             "asymptote.rootfree_sgd_return")
# measured CPU seconds (2 shared cores, one torch thread): sizes the progress bar (sandbox.verify.runner.family_cost)
COST = {"quick": 13, "full": 130}
CLAIMS = POWER + GEOMETRIC + CROSSOVER + ("asymptote.delta_limit_default_beta2",) \
    + sign_trust_rows.ASYMPTOTE_CLAIMS
SIZE_LAWS = sign_trust_rows.SIZE_LAWS  # laws of unmodelled stages checked here


def sizes(cfg: VerifyConfig) -> dict:
    """Quick: ≈10 s of toy steps on an idle 2-core CPU; full: ≈2–3 min."""
    if cfg.quick:
        return {"replicas": 64, "steps": 1000, "geo_steps": 600, "cross_steps": 1500,
                "beta2": 0.9, "rf_rc": 2.0}
    return {"replicas": 256, "steps": 10000, "geo_steps": 3000, "cross_steps": 6000,
            "beta2": 0.99, "rf_rc": 3.0}


# --- jobs ----------------------------------------------------------------------------------------
def _signature(tr) -> tuple:
    return (tr.homogeneity, tr.momentum_kind, round(tr.momentum, 6), tr.projected, tr.nesterov,
            tr.adaptive_inertia)


def jobs(cfg: VerifyConfig) -> list[dict]:
    """One toy run per (rule, setting); quick mode keeps one rule per trait signature."""
    s = sizes(cfg)
    out, seen = [], set()
    for name in theory_rules():
        spec = sandbox.info(name)
        betas = [0.0, BETA] if spec.momentum_kind == "heavy_ball" and spec.homogeneity > -1 \
            and not spec.projected else [BETA] if spec.momentum_kind == "heavy_ball" \
            and spec.homogeneity > -1 else [None]
        for beta in betas:
            hp = toy_hyperparameters(spec, beta, s["beta2"], weight_decay=0.0)
            tr = rule_traits(name, **hp)
            if cfg.quick and _signature(tr) in seen:
                continue
            seen.add(_signature(tr))
            label = name + (f" β={beta:g}" if beta is not None else "")
            if spec.homogeneity > -1:
                hp["lr"] = asymptote_lr(tr, D, T0)
                out.append({"kind": "power", "rule": name, "label": label, "hp": hp,
                            "steps": s["steps"], "claims": POWER})
                if not cfg.quick and spec.homogeneity == 0 and "betas" in spec.defaults \
                        and not spec.projected and not any(j.get("lagged") for j in out):
                    hp2 = dict(hp, betas=tuple(spec.defaults["betas"]))
                    out.append({"kind": "power", "rule": name, "label": label + " β2=default",
                                "hp": hp2, "steps": 2 * s["steps"], "lagged": True,
                                "claims": ("asymptote.delta_limit_default_beta2",)})
                continue
            hp["eps"] = 0.0
            hp["lr"] = RF_DELTA / rf.predict_geometric(name, D, **dict(hp, lr=1.0))["spec_A"]
            out.append({"kind": "geometric", "rule": name, "label": label, "hp": hp,
                        "steps": s["geo_steps"], "claims": GEOMETRIC})
            if not tr.projected:
                hp = dict(hp, eps=float(1 * (D - 1) / (D * s["rf_rc"] ** 2)))
                hp["lr"] = RF_CROSS_DELTA / rf.predict_geometric(name, D, **dict(hp, lr=1.0, eps=0.0))["spec_A"]
                # long enough to pass 1.1× the predicted half-plateau radius
                r_half = rf.half_radius(*_profile_grid(name, hp))
                steps = max(s["cross_steps"], int(1.05 * rf.steps_to_radius(name, 1.1 * r_half, D, **hp)))
                out.append({"kind": "crossover", "rule": name, "label": label + " damped",
                            "hp": hp, "steps": steps, "claims": CROSSOVER})
    rules = cfg.extra.get("rules")  # optional restriction to some registered names
    return [j for j in out if any(claim_selected(cfg, c) for c in j["claims"])
            and (rules is None or j["rule"] in rules)]


def _profile_grid(name: str, hp: dict):
    """(radii, predicted Δ(r), half of the no-damping plateau) for locating the crossover."""
    plateau = rf.predict_geometric(name, D, **dict(hp, eps=0.0))["delta"]
    r = np.geomspace(1.0, 20.0, 200)
    return r, rf.predict_profile(name, r, D, **hp), plateau / 2


def plan(cfg: VerifyConfig) -> list[tuple[str, str, float]]:
    """The work units (one toy run each) as (first claim, rule label, weight = steps): a toy
    run's cost is about proportional to its steps (the progress bar's shares)."""
    return [(j["claims"][0], j["label"], float(j["steps"])) for j in jobs(cfg)] \
        + sign_trust_rows.plan(cfg, NAME)


def _run_job(cfg: VerifyConfig, job: dict, seed: int) -> pd.DataFrame:
    s = sizes(cfg)
    probes = {"bv": preconditioner_probe} if job["kind"] == "crossover" else None
    key = {"family": NAME, "version": VERSION, "rule": job["rule"], "hp": job["hp"],
           "steps": job["steps"], "replicas": s["replicas"], "d": D, "seed": seed,
           "device": cfg.device}
    key["groups"] = GROUPS
    return cached(cfg.family_dir(NAME) / "runs", key, lambda: run_noise_toy(
        job["rule"], job["steps"], s["replicas"], D, seed=seed, device=cfg.device, probes=probes,
        label=job["label"], groups=GROUPS, **job["hp"]))


def measured(stat, df) -> dict:
    """{name: (value, 95% interval)}: ``stat(table) -> {name: value}`` on the whole run, with the
    delete-one-group jackknife over its replica groups (:mod:`sandbox.verify.intervals`)."""
    return jackknife_stat(stat, whole_run(df), leave_one_group_out(df))


# --- claims --------------------------------------------------------------------------------------
def mean_field_curve(job, t, delta, t_start: float):
    """Mean-field Δ_t, r_t^{2(k+1)}/(r-scale) on steps t_start..T, started from the MEASURED Δ.

    theory.homogeneity.angular_step_mean_field integrated from t_a (the first recorded
    step ≥ t_start) with y_a set by the measured rms Δ at t_a (a local power-law fit over
    [t_a, 1.5 t_a]; Δ²(1+κΔ²) = η²A²/y): the early transient
    (bias corrections, large first angles) is taken from the data, the shape after t_a is the
    prediction. Returns (Δ, y) on the integer steps 1..T (NaN before t_a).
    """
    tr = rule_traits(job["rule"], **job["hp"])
    k, M = float(tr.homogeneity), float(theory.momentum_factor(tr))
    A = float(theory.toy_update_size(tr, D))
    eta = job["hp"]["lr"]
    kappa = projection_lag_coefficient(tr.beta, tr.projected, tr.project_buffer)
    near = (t >= t_start) & (t <= 1.5 * t_start)
    t_a = int(t[near][0])
    local = fit_power_law(t[near], delta[near])  # smooths the replica noise of one point
    d_a = float(local["prefactor"] * t_a ** local["exponent"])
    y_a = (eta * A) ** 2 / (np.tan(d_a) ** 2 * (1 + kappa * np.tan(d_a) ** 2))
    steps = int(t.max())
    d_mf, r_mf = angular_step_mean_field(steps - t_a + 1, y_a ** (1 / (2 * (k + 1))), eta, A, k, M,
                                         kappa)
    full_d, full_y = np.full(steps + 1, np.nan), np.full(steps + 1, np.nan)
    full_d[t_a:] = d_mf
    full_y[t_a:] = r_mf ** (2 * (k + 1))
    return full_d, full_y


def _power_measures(job, df, k: float) -> dict:
    """The measured side of the power-law claims, from a run's table (whole or jackknifed)."""
    t, delta = series(df, "delta")
    end, win, late = t >= 0.8 * t.max(), t >= 0.25 * t.max(), late_window(t)
    _, r = series(df, "norm")
    return {"delta_end": float(np.sqrt(np.mean(delta[end] ** 2))),
            "constant": fit_inverse_square(t[win], delta[win])["slope"],
            "exponent": fit_power_law(t[late], delta[late])["exponent"],
            "momentum_factor": measured_momentum_factor(df, 0.1 * t.max(), t.max()),
            "growth": growth_linearity(t, r ** (2 * (k + 1)), start=float(t[late][0]))}


def _power_rows(job, df, setting):
    tr = rule_traits(job["rule"], **job["hp"])
    k, M = float(tr.homogeneity), float(theory.momentum_factor(tr))
    k1M = (k + 1) * M
    t, delta = series(df, "delta")
    end = t >= 0.8 * t.max()
    pred_end = float(np.sqrt(np.mean(theory.angular_step_asymptote(t[end], tr) ** 2)))
    win = t >= 0.25 * t.max()
    late = late_window(t)
    mf_delta, mf_y = mean_field_curve(job, t, delta, 0.1 * t.max())
    ti = t.astype(int)
    fit_mf = fit_inverse_square(t[win], mf_delta[ti][win])
    pw_mf = fit_power_law(t[late], mf_delta[ti][late])
    t_a = float(t[late][0])
    lin_mf = growth_linearity(t[late], mf_y[ti][late], start=t_a)
    m = measured(lambda d: _power_measures(job, d, k), df)
    why = "M=(2−β0)/β0 (Adai, derived here)" if tr.adaptive_inertia else f"M={M:.4g}"
    kap = projection_lag_coefficient(tr.beta, tr.projected, tr.project_buffer)
    mf = f"the same fit on the mean-field curve started from the measured Δ at t = T/10 (κ = {kap:.3g})"
    rows = []

    def add(claim, predicted, key, tol, **kw):
        value, interval = m[key]
        rows.append(make_row(NAME, claim, job["label"], setting, predicted, value, tol,
                             interval=interval, **kw))

    if job.get("lagged"):
        add("asymptote.delta_limit_default_beta2", pred_end, "delta_end", 0.1, status="open",
            note=f"default β2: v lags g² ∝ 1/t; Δ·sqrt((k+1)Mt) = "
                 f"{m['delta_end'][0] / pred_end:.3f} at t ≈ {t.max():.0f}")
        return rows
    add("asymptote.delta_limit", pred_end, "delta_end", 0.10, status="derived",
        note=f"rms Δ over t∈[{0.8 * t.max():.0f},{t.max():.0f}] vs 1/sqrt((k+1)Mt), k={k:g}, {why}; "
             f"Arora, Li & Lyu 2019 (rate), Heo et al. 2021 (M)")
    add("asymptote.constant", fit_mf["slope"], "constant", 0.10, status="derived",
        note=f"slope of Δ^-2 over t ≥ T/4; asymptotically (k+1)M = {k1M:.4g}; predicted: {mf}")
    add("asymptote.exponent", pw_mf["exponent"], "exponent", 0.05, error_kind="exponent",
        status="published",
        note=f"log-log slope over the last decade; → −1/2 (Arora, Li & Lyu 2019); predicted: {mf}")
    add("asymptote.momentum_factor", M, "momentum_factor", 0.10, status="derived",
        note="growth of E r² / Σ E‖Δw‖² over the last decade (Heo et al. 2021 corollary)")
    add("asymptote.norm_growth", lin_mf, "growth", 0.10, status="derived",
        note=f"late/early slope of r^{2 * (k + 1):g} over the last decade (1 = linear); predicted: {mf}")
    return rows


def _geometric_measures(job, df) -> dict:
    t, delta = series(df, "delta")
    _, r = series(df, "norm")
    _, s2 = step_squares(df)
    w = t >= t.max() / 2
    return {"delta": float(np.sqrt(np.mean(delta[w] ** 2))),
            "log_rho": float(np.polyfit(t[w], np.log(r[w] ** 2), 1)[0]),
            "A": float(np.sqrt(np.mean(s2[w] / r[w] ** 2)) / job["hp"]["lr"]),
            "exponent": fit_power_law(t[w], delta[w])["exponent"]}


def _geometric_rows(job, df, setting):
    p = rf.predict_geometric(job["rule"], D, **job["hp"])
    m = measured(lambda d: _geometric_measures(job, d), df)
    rows = []

    def add(claim, predicted, key, tol, **kw):
        value, interval = m[key]
        rows.append(make_row(NAME, claim, job["label"], setting, predicted, value, tol,
                             status="derived", interval=interval, **kw))

    lagnote = f"lag c_v={p['lag']:.3g} (β2={p['beta2']:g})"
    d_meas = m["delta"][0]
    add("asymptote.rootfree_delta", p["delta"], "delta", 0.10,
        note=f"{lagnote}; catalogue's lag-free arctan(ηA) = {p['spec_delta']:.4g} "
             f"(measured/catalogue = {d_meas / p['spec_delta']:.3f})")
    add("asymptote.rootfree_growth", p["log_rho"], "log_rho", 0.10,
        note=f"ln ρ per step; catalogue's lag-free ln(1 + Mη²A²) = {p['spec_log_rho']:.4g}")
    add("asymptote.rootfree_A", p["A"], "A", 0.10,
        note=f"A = ‖u‖/r, u = Δw/η; from the equations with v converged (catalogue form): {p['spec_A']:.4g}; "
             f"N² = {p['N2']:.4g}")
    add("asymptote.rootfree_exponent", 0.0, "exponent", 0.05, error_kind="exponent",
        note="log-log slope of Δ_t over the second half of the run")
    return rows


def _crossover_rows(job, df, setting):
    c = rf.crossover_measurements(whole_run(df), job["rule"], D, 150.0, **job["hp"])

    def stat(d):
        x = rf.crossover_measurements(d, job["rule"], D, 150.0, **job["hp"])
        return {k: x[k] for k in ("r_half_meas", "profile_error", "late_exponent")}

    m = measured(stat, df)
    rows = [make_row(NAME, "asymptote.rootfree_crossover", job["label"], setting, c["r_half_pred"],
                     c["r_half_meas"], 0.10, status="derived", interval=m["r_half_meas"][1],
                     note=f"radius where Δ falls to half its plateau {c['plateau']:.4g}; catalogue "
                          f"r_c = G/sqrt(dλ) = {c['r_c']:.3g} (r_half/r_c = "
                          f"{c['r_half_meas'] / c['r_c']:.3f}: lag and the 1/(1 + r²/r_c²) shape)"),
            make_row(NAME, "asymptote.rootfree_profile", job["label"], setting, 0.0,
                     c["profile_error"], 0.10, error_kind="absolute", status="derived",
                     interval=m["profile_error"][1],
                     note="max |Δ_meas/Δ_profile(r) − 1| after 150 steps (quasi-static profile)"),
            make_row(NAME, "asymptote.rootfree_sgd_return", job["label"], setting, -0.5,
                     c["late_exponent"], 0.10, error_kind="exponent", status="open",
                     interval=m["late_exponent"][1],
                     note=f"late log-log slope of Δ_t; B·v/λ = {c['bv_over_damping_end']:.3g} at the "
                          f"end (→ −1/2 as B·v/λ → 0: SGD with lr η/λ)")]
    return rows, c


def _curves(job, df, extra=None) -> pd.DataFrame:
    """Measured rms Δ and ‖w‖ per recorded step with the prediction at the same steps."""
    t, delta = series(df, "delta")
    _, q05 = series(df, "delta", "q05")
    _, q95 = series(df, "delta", "q95")
    _, r = series(df, "norm")
    base = {"rule": job["rule"], "label": job["label"], "kind": job["kind"], "step": t}
    asym = np.full_like(t, np.nan)
    if job["kind"] == "power":
        pred = mean_field_curve(job, t, delta, 0.1 * t.max())[0][t.astype(int)]
        asym = theory.angular_step_asymptote(t, rule_traits(job["rule"], **job["hp"]))
    elif job["kind"] == "geometric":
        g = rf.predict_geometric(job["rule"], D, **job["hp"])
        pred, asym = np.full_like(t, g["delta"]), np.full_like(t, g["spec_delta"])
    else:
        pred = rf.predict_profile(job["rule"], r, D, **job["hp"])
    frames = [pd.DataFrame({**base, "quantity": "delta", "measured": delta, "measured_q05": q05,
                            "measured_q95": q95, "predicted": pred, "asymptote": asym,
                            "norm": r})]
    _, n05 = series(df, "norm", "q05")
    _, n95 = series(df, "norm", "q95")
    frames.append(pd.DataFrame({**base, "quantity": "norm", "measured": r, "measured_q05": n05,
                                "measured_q95": n95, "predicted": np.nan, "norm": r}))
    return pd.concat(frames, ignore_index=True)


def run(cfg: VerifyConfig) -> pd.DataFrame:
    curves = TidyLog(cfg.family_dir(NAME) / "curves.csv")
    rows = []
    work = [(j["claims"][0], j["label"], j) for j in jobs(cfg)]
    for _, _, job in progress(cfg, work, desc=NAME):
        df = _run_job(cfg, job, cfg.seed + stable_seed(job["label"]))
        setting = setting_text(d=D, replicas=sizes(cfg)["replicas"], steps=job["steps"],
                               **{k: v for k, v in job["hp"].items() if k != "batch_size"})
        if job["kind"] == "power":
            new = _power_rows(job, df, setting)
        elif job["kind"] == "geometric":
            new = _geometric_rows(job, df, setting)
        else:
            new, _ = _crossover_rows(job, df, setting)
        rows += [r for r in new if claim_selected(cfg, r["claim"])]
        curves.append(_curves(job, df))
    rows += sign_trust_rows.rows(cfg, NAME, VERSION)  # Lion / LAMB / LARS (theory §7)
    return rows_frame(rows)


# --- figures -------------------------------------------------------------------------------------
def plot(results: pd.DataFrame, cfg: VerifyConfig):
    from .asymptotes_figures import plot_norm, plot_power, plot_rootfree

    path = cfg.family_dir(NAME) / "curves.csv"
    if not path.exists():
        return []
    c = pd.read_csv(path)
    out = []
    delta = c[c["quantity"] == "delta"]
    power = delta[delta["kind"] == "power"]
    if not power.empty:
        out.append(plot_power(power, cfg.family_dir(NAME) / "asymptotes_delta.png"))
    rfc = delta[delta["kind"] != "power"]
    if not rfc.empty:
        out.append(plot_rootfree(rfc, cfg.family_dir(NAME) / "asymptotes_rootfree.png"))
    norm = c[c["quantity"] == "norm"]
    if not norm.empty:
        out.append(plot_norm(norm, cfg.family_dir(NAME) / "asymptotes_norm.png"))
    return out

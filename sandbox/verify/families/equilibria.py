r"""Theory §3: the weight-decay equilibrium of a scale-invariant weight, on the noise-driven toy.

Every registered rule runs through ``sandbox.create`` on R replicas of the noise-driven toy
(d = 64, item shape (1, d)); hyperparameters are chosen from the prediction itself
(:func:`sandbox.experiments.weight_decay.equilibrium_setting`): every rule at the same
x = η·λ_eff, started at r_0 = 1 with the equilibrium at y* = y_0/2 (y = r^{2(k+1)}),
run for 7 predicted relaxation times τ; equilibrium values are averaged over t ≥ 4.5τ.

Claims (predictions: theory.equilibrium, refined finite-ηλ forms, with the projection lag):
- ``equilibrium.delta`` — rms Δ* = sqrt(2ηλ_eff/M) (arccos(1 − x) projected) for SGD (β = 0),
  SGDM with L2 inside the heavy ball, SGDP, AdamW, AdamP (5%).
- ``equilibrium.norm`` — r* = (M η A²/(2λ_eff))^{1/(2(k+1))} with A from theory.toy (5%).
  CORRECTION (theory.equilibrium): AdamP's norm has λ·wd_ratio, not λ, and the
  projection-lag factor (1 + β²Δ*²/(1−β)²)^{-1/2}.
- ``equilibrium.time`` — τ fitted to the relaxation of y vs 1/(2(k+1)ηλ_eff) (10%), CORRECTED
  here for projected rules whose buffer is not projected (AdamP, Adai+P): the projection lag
  κΔ² (κ = β²/(1−β)²) makes the growth term rise with y, so τ = (1+2s)/((1+s)·2(k+1)x),
  s = κΔ*² (theory.equilibrium.equilibrium_relaxation; +24% for AdamP at x = 2e-3).
- ``equilibrium.projection_ratio`` — at equal η·λ_eff (equal hyperparameters at wd_ratio = 1)
  projection raises Δ* by sqrt(M_unprojected/M_projected) = sqrt((1+β)/(1−β)) (5%).
- ``equilibrium.adam_l2`` — REPORTED: Adam with L2 has no fixed Δ*; measured at several
  gradient scales σ against the conditional prediction of theory.equilibrium (given the
  scale-free gradient norm r‖g‖ = sqrt(d−1)σ); ``equilibrium.adam_l2_exponent`` the fitted
  exponent of Δ* in σ (≈ −1/3 in the noise-dominated regime λr² ≪ r‖g‖).
- ``equilibrium.adai_delta`` / ``_norm`` / ``_time`` / ``_exponents`` — Adai/AdaiW (open,
  REPORTED): measured against the mean-field prediction derived here (mean inertia 1 − β0,
  M = (2−β0)/β0, theory.homogeneity.adai_momentum_factor), and Δ* ∝ η^a λ^b fitted
  over runs at 4η and 4λ (predicted a = b = 1/2).
- ``equilibrium.rootfree_factor`` / ``equilibrium.rootfree_delta`` — root-free rules have no
  equilibrium: r² × ρ per step; ρ and Δ from the lag-corrected fixed point (derived here;
  the catalogue's (1−ηλ)² + η²A² with v converged is in the note) in a growing and a shrinking
  setting (10%).
Adam-type rules run with β2 = 0.9: the relaxation time 1/(2ηλ_eff) assumes v follows E[g²]
∝ 1/r² at once; with v's memory ℓ = β2/(1−β2) not ≪ τ the growth term lags and relaxation is
slower (linearised: σ(1 + 2xℓ/(1 − ℓσ)) = 2x, σ = 1/τ) — measured in the full run at β2 = 0.99,
x = 1e-3: AdamW τ = 572 vs 500 (+14%), AdamP 627 vs 570 (+10%); the equilibrium values Δ*, r*
themselves do not depend on β2 (0.3% there).
§7 (Lion, LAMB, LARS, rotational variants): :mod:`.sign_trust_rows`, :mod:`.rotational_rows`.
Not applicable (reported in no row): Adam+P / Adai+P / root-free RMSProp+P with a coupled L2
that the projection removes (λ_eff = 0: no equilibrium, §2 applies).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

import sandbox
import theory
from sandbox.experiments import rootfree as rf
from sandbox.experiments.effective_step import (leave_one_group_out, run_noise_toy, series,
                                                whole_run)
from sandbox.experiments.run_cache import cached, stable_seed
from sandbox.experiments.weight_decay import (equilibrium_setting, fit_exponents, fit_relaxation,
                                              isotropic_traits, measure_equilibrium,
                                              predict_equilibrium)
from sandbox.verify import figures
from sandbox.verify.applicability import theory_rules, toy_hyperparameters
from sandbox.verify.base import VerifyConfig
from sandbox.verify.intervals import jackknife_stat, ratio_interval
from sandbox.verify.rows import (TidyLog, claim_selected, make_row, progress, rows_frame,
                                 setting_text)
from theory.equilibrium import equilibrium_relaxation
from theory.homogeneity import projection_lag_coefficient
from . import rotational_rows, sign_trust_rows

TITLE = "Weight-decay equilibrium: angle, norm, relaxation (theory §3)"
NAME = "equilibria"
VERSION = 3
GROUPS = 8  # replica groups of the jackknife intervals (sandbox.verify.intervals)
D, BETA, RF_DELTA = 64, 0.9, 0.01
MAIN = ("equilibrium.delta", "equilibrium.norm", "equilibrium.time")
ADAI = ("equilibrium.adai_delta", "equilibrium.adai_norm", "equilibrium.adai_time")
# claims whose status is open: measured and REPORTED, never graded
OPEN = frozenset(ADAI + ("equilibrium.adam_l2", "equilibrium.adam_l2_exponent",
                         "equilibrium.adai_exponents"))
# measured CPU seconds (2 shared cores, one torch thread): sizes the progress bar (sandbox.verify.runner.family_cost)
COST = {"quick": 14, "full": 50}
CLAIMS = MAIN + ADAI + ("equilibrium.projection_ratio", "equilibrium.adam_l2",
                        "equilibrium.adam_l2_exponent", "equilibrium.adai_exponents",
                        "equilibrium.rootfree_factor", "equilibrium.rootfree_delta") \
    + sign_trust_rows.EQUILIBRIUM_CLAIMS + rotational_rows.EQUILIBRIUM_CLAIMS
SIZE_LAWS = sign_trust_rows.SIZE_LAWS + rotational_rows.SIZE_LAWS  # unmodelled laws checked here


def sizes(cfg: VerifyConfig) -> dict:
    """Quick: 64 replicas (8 jackknife groups of 8), ηλ_eff = 2e-3, the graded claims only (Adai's
    and Adam-with-L2's open claims are the full mode's); full: 256 replicas, ηλ_eff = 1e-3."""
    if cfg.quick:
        return {"replicas": 64, "x": 2e-3, "beta2": 0.9, "span": 7.0, "rf_steps": 600,
                "sigmas": (0.5, 2.0)}
    return {"replicas": 256, "x": 1e-3, "beta2": 0.9, "span": 8.0, "rf_steps": 2000,
            "sigmas": (0.25, 0.5, 1.0, 2.0, 4.0)}


# --- predictions ---------------------------------------------------------------------------------
def prediction(rule: str, hp: dict, d: int = D) -> dict:
    """Δ*, r*, τ for a rule with an equilibrium on the d-dim noise toy (Adai: isotropic mean field;
    projection lag in τ)."""
    tr = isotropic_traits(rule, **hp)
    e = predict_equilibrium(rule, d, **hp)
    k, M = float(tr.homogeneity), float(theory.momentum_factor(tr))
    x = hp["lr"] * float(theory.effective_decay(hp["weight_decay"], tr, hp.get("wd_ratio", 0.1)))
    kap = projection_lag_coefficient(tr.beta, tr.projected, tr.project_buffer)
    rel = equilibrium_relaxation(hp["lr"], float(theory.toy_update_size(tr, d)), x, k, M, kap)
    return {"delta": e.angular_step, "norm": e.norm, "tau": rel["tau"],
            "tau_spec": 1 / (2 * (k + 1) * x), "k": k, "M": M, "beta": tr.beta, "kappa": kap,
            "adaptive": rule_is_adaptive(rule)}


def rule_is_adaptive(rule: str) -> bool:
    return sandbox.info(rule).momentum_kind == "adaptive"


# --- jobs ----------------------------------------------------------------------------------------
def _base_hp(spec, s, beta):
    rootfree = {"eps": 0.0} if spec.homogeneity <= -1 else {}
    return toy_hyperparameters(spec, beta, s["beta2"], weight_decay=0.0, **rootfree)


def jobs(cfg: VerifyConfig) -> list[dict]:
    s = sizes(cfg)
    out, seen = [], set()
    for name in theory_rules():
        spec = sandbox.info(name)
        hb = spec.momentum_kind == "heavy_ball" and spec.homogeneity > -1
        for beta in ([0.0, BETA] if hb and not spec.projected else [BETA] if hb else [None]):
            base = _base_hp(spec, s, beta)
            label = name + (f" β={beta:g}" if beta is not None else "")
            tr = isotropic_traits(name, **base)
            sig = (tr.homogeneity, tr.momentum_kind, tr.momentum, tr.projected, tr.decay,
                   tr.adaptive_inertia, rule_is_adaptive(name))
            if cfg.quick and sig in seen:
                continue
            seen.add(sig)
            if spec.homogeneity <= -1:
                out += _rootfree_jobs(name, label, base, tr, s)
                continue
            if tr.decay == "coupled" and tr.l2_preconditioned and tr.homogeneity == 0:
                out += _adam_l2_jobs(name, label, base, s)
                continue
            try:
                hp = equilibrium_setting(name, d=D, x=s["x"], **base)
            except ValueError:
                continue  # the decay is projected away: no equilibrium
            p = prediction(name, hp)
            steps = int(s["span"] * p["tau"])
            claims = ADAI if p["adaptive"] else MAIN
            out.append({"kind": "main", "rule": name, "label": label, "hp": hp, "steps": steps,
                        "claims": claims + ("equilibrium.projection_ratio",)})
            if p["adaptive"] and not tr.projected:
                for f_eta, f_lam in ((4.0, 1.0), (1.0, 4.0)):
                    hp2 = dict(hp, lr=hp["lr"] * f_eta, weight_decay=hp["weight_decay"] * f_lam)
                    out.append({"kind": "adai_scan", "rule": name, "label": label, "hp": hp2,
                                "steps": int(s["span"] * prediction(name, hp2)["tau"]),
                                "claims": ("equilibrium.adai_exponents",)})
    rules = cfg.extra.get("rules")  # optional restriction to some registered names
    if cfg.quick and cfg.only is None:  # quick: the graded claims; the open ones (REPORTED) are
        # the full mode's, or quick mode's when --only asks for them
        out = [j for j in out if not (set(j["claims"]) <= OPEN or rule_is_adaptive(j["rule"]))]
    return [j for j in out if any(claim_selected(cfg, c) for c in j["claims"])
            and (rules is None or j["rule"] in rules)]


def _adam_l2_jobs(name, label, base, s):
    out = []
    for sigma in s["sigmas"]:
        hp = dict(base, lr=0.01, weight_decay=0.2)
        e = predict_equilibrium(name, D, sigma=sigma, **hp)
        out.append({"kind": "adam_l2", "rule": name, "label": f"{label} σ={sigma:g}", "hp": hp,
                    "sigma": sigma, "r0": 1.2 * e.norm, "steps": int(s["span"] * e.time_constant),
                    "claims": ("equilibrium.adam_l2", "equilibrium.adam_l2_exponent")})
    return out


def _rootfree_jobs(name, label, base, tr, s):
    hp = dict(base, lr=RF_DELTA / rf.predict_geometric(name, D, **dict(base, lr=1.0))["spec_A"])
    unit = float(theory.effective_decay(1.0, tr, hp.get("wd_ratio", 0.1)))
    if not unit > 0:
        return []
    g = rf.predict_geometric(name, D, **hp)["log_rho"]
    out = []
    for regime, x in (("grows", g / 4), ("shrinks", 3 * g)):
        out.append({"kind": "rootfree", "rule": name, "label": f"{label} ({regime})",
                    "hp": dict(hp, weight_decay=x / (hp["lr"] * unit)), "steps": s["rf_steps"],
                    "claims": ("equilibrium.rootfree_factor", "equilibrium.rootfree_delta")})
    return out


def plan(cfg: VerifyConfig) -> list[tuple[str, str, float]]:
    """The work units (one toy run each) as (first claim, rule label, weight = steps): a toy
    run's cost is about proportional to its steps (the progress bar's shares)."""
    return [(j["claims"][0], j["label"], float(j["steps"])) for j in jobs(cfg)] \
        + sign_trust_rows.plan(cfg, NAME) + rotational_rows.plan(cfg)


def _run_job(cfg, job, seed):
    s = sizes(cfg)
    sigma, r0 = job.get("sigma", 1.0), job.get("r0", 1.0)
    key = {"family": NAME, "version": VERSION, "rule": job["rule"], "hp": job["hp"], "sigma": sigma,
           "r0": r0, "steps": job["steps"], "replicas": s["replicas"], "d": D, "seed": seed,
           "device": cfg.device, "groups": GROUPS}
    return cached(cfg.family_dir(NAME) / "runs", key, lambda: run_noise_toy(
        job["rule"], job["steps"], s["replicas"], D, r0=r0, sigma=sigma, seed=seed,
        device=cfg.device, label=job["label"], groups=GROUPS, **job["hp"]))


def measured(stat, df) -> dict:
    """{name: (value, 95% interval)}: ``stat(table) -> {name: value}`` on the whole run, with the
    delete-one-group jackknife over its replica groups (:mod:`sandbox.verify.intervals`)."""
    return jackknife_stat(stat, whole_run(df), leave_one_group_out(df))


# --- rows ----------------------------------------------------------------------------------------
def _main_rows(job, df, setting, s):
    p = prediction(job["rule"], job["hp"])
    tau_p = p["tau"]
    t_fit = max(5.0 / (1.0 - p["beta"]) if p["beta"] else 10.0, 0.5 * tau_p)

    def stat(d):
        e = measure_equilibrium(d, p["k"], 4.5 * tau_p)
        return {"delta": e["delta"], "norm": e["norm"],
                "tau": fit_relaxation(d, p["k"], t_from=t_fit, tau_guess=tau_p)["tau"]}

    m = measured(stat, df)
    band = measure_equilibrium(whole_run(df), p["k"], 4.5 * tau_p)
    adai = p["adaptive"]
    ids = ADAI if adai else MAIN
    status = "open" if adai else None
    why = ("mean-field: mean inertia 1−β0, M=(2−β0)/β0 (derived here; status open)" if adai
           else "theory.equilibrium (refined)")
    rows = [
        make_row(NAME, ids[0], job["label"], setting, p["delta"], m["delta"][0], 0.05,
                 status=status, interval=m["delta"][1],
                 note=f"rms Δ over t ≥ {4.5 * tau_p:.0f}; replica band [{band['delta_q05']:.3g}, "
                      f"{band['delta_q95']:.3g}]; {why}"),
        make_row(NAME, ids[1], job["label"], setting, p["norm"], m["norm"][0], 0.05, status=status,
                 interval=m["norm"][1],
                 note=f"(E r^{2 * (p['k'] + 1):g})^(1/{2 * (p['k'] + 1):g}) over t ≥ {4.5 * tau_p:.0f}"),
        make_row(NAME, ids[2], job["label"], setting, tau_p, m["tau"][0], 0.10, status=status,
                 interval=m["tau"][1],
                 note=f"fit of y = r^{2 * (p['k'] + 1):g} relaxation for t ≥ {t_fit:.0f}; "
                      f"1/(2(k+1)ηλ_eff) = {p['tau_spec']:.4g}"
                      + (f"; projection-lag correction κ = {p['kappa']:.3g}" if p["kappa"] else "")),
    ]
    return rows, {"label": job["label"], "rule": job["rule"], "delta": m["delta"][0],
                  "delta_interval": m["delta"][1],
                  "predicted": p["delta"], "M": p["M"], "projected": bool(p["kappa"]) or
                  isotropic_traits(job["rule"], **job["hp"]).projected,
                  "k": p["k"], "adaptive": adai, "hp": job["hp"]}


def _ratio_rows(results: list[dict], setting_of) -> list[dict]:
    """Projection ratio: each projected run against the unprojected run of the same k and
    momentum kind (equal η·λ_eff by construction)."""
    rows = []
    for p in [r for r in results if r["projected"]]:
        partners = [u for u in results if not u["projected"] and u["k"] == p["k"]
                    and u["adaptive"] == p["adaptive"] and u["M"] > 1]
        base = sandbox.info(p["rule"]).base
        partners.sort(key=lambda u: (u["rule"] != base, u["label"]))
        if not partners:
            continue
        u = partners[0]
        rows.append(make_row(NAME, "equilibrium.projection_ratio", f"{p['label']} / {u['label']}",
                             setting_of(p), p["predicted"] / u["predicted"],
                             p["delta"] / u["delta"], 0.05, status="open" if p["adaptive"] else "derived",
                             interval=ratio_interval(p["delta"], p["delta_interval"], u["delta"],
                                                     u["delta_interval"]),
                             note=f"Δ*(projected)/Δ*(unprojected) at equal η·λ_eff (the ratio of the "
                                  f"two refined predictions); leading order sqrt(M_u/M_p) = "
                                  f"sqrt((1+β)/(1−β)) = {np.sqrt(u['M'] / p['M']):.4g}"))
    return rows


def _adam_l2_rows(jobs_done, s):
    rows, sig, dl = [], [], []
    for job, df, setting in jobs_done:
        e = predict_equilibrium(job["rule"], D, sigma=job["sigma"], **job["hp"])
        m = measure_equilibrium(df, 0, 4.5 * e.time_constant)
        rows.append(make_row(NAME, "equilibrium.adam_l2", job["label"], setting, e.angular_step,
                             m["delta"], 0.05, status="open",
                             note=f"conditional prediction given r‖g‖ = sqrt(d−1)σ (theory.equilibrium);"
                                  f" r* {m['norm']:.4g} vs {e.norm:.4g}; λr²/(r‖g‖) = "
                                  f"{job['hp']['weight_decay'] * m['norm'] ** 2 / (np.sqrt(D - 1) * job['sigma']):.3g}"))
        sig.append(job["sigma"])
        dl.append((m["delta"], e.angular_step))
    if len(sig) >= 2:
        ls = np.log(sig)
        meas = np.polyfit(ls, np.log([a for a, _ in dl]), 1)[0]
        pred = np.polyfit(ls, np.log([b for _, b in dl]), 1)[0]
        rows.append(make_row(NAME, "equilibrium.adam_l2_exponent", jobs_done[0][0]["rule"],
                             f"sigma={tuple(sig)}", pred, meas, 0.05, error_kind="exponent",
                             status="open", note="Δ* ∝ σ^p: the equilibrium moves with the gradient "
                                                 "scale (Kosson et al. 2024); p → −1/3 when λr² ≪ r‖g‖"))
    return rows


def _adai_exponent_rows(scan):
    rows = []
    for rule, items in scan.items():
        if len(items) < 3:
            continue
        hps = [h for h, _ in items]
        ex = fit_exponents(hps, [dm for _, dm in items])
        for which in ("lr", "weight_decay"):
            rows.append(make_row(NAME, "equilibrium.adai_exponents", rule, f"{which} ×1, ×4",
                                 0.5, ex[which], 0.1, error_kind="exponent", status="open",
                                 note=f"Δ* ∝ η^a λ^b fitted over 3 runs: a = {ex['lr']:.3f}, "
                                      f"b = {ex['weight_decay']:.3f} (isotropic mean field: 1/2, 1/2)"))
    return rows


def _rootfree_measures(df) -> dict:
    t, delta = series(df, "delta")
    _, r = series(df, "norm")
    w = t >= t.max() / 2
    return {"log_rho": float(np.polyfit(t[w], np.log(r[w] ** 2), 1)[0]),
            "delta": float(np.sqrt(np.mean(delta[w] ** 2)))}


def _rootfree_rows(job, df, setting):
    p = rf.predict_geometric(job["rule"], D, **job["hp"])
    m = measured(_rootfree_measures, df)
    return [make_row(NAME, "equilibrium.rootfree_factor", job["label"], setting, p["log_rho"],
                     m["log_rho"][0], 0.10, status="derived", interval=m["log_rho"][1],
                     note=f"ln ρ per step (no equilibrium: r² × ρ); lag c_v = {p['lag']:.3g}; spec "
                          f"(1−ηλ)²+Mη²A² (v converged): ln = {p['spec_log_rho']:.4g}"),
            make_row(NAME, "equilibrium.rootfree_delta", job["label"], setting, p["delta"],
                     m["delta"][0], 0.10, status="derived", interval=m["delta"][1],
                     note=f"catalogue's arctan(ηA/(1−ηλ)) (v converged) = {p['spec_delta']:.4g}")]


def run(cfg: VerifyConfig) -> pd.DataFrame:
    s = sizes(cfg)
    curves = TidyLog(cfg.family_dir(NAME) / "curves.csv")
    rows, main_results, adam_l2, scan, settings = [], [], [], {}, {}
    work = [(j["claims"][0], j["label"], j) for j in jobs(cfg)]
    for _, _, job in progress(cfg, work, desc=NAME):
        df = _run_job(cfg, job, cfg.seed + stable_seed(job["label"]))
        hp = {k: v for k, v in job["hp"].items() if k != "batch_size"}
        setting = setting_text(d=D, replicas=s["replicas"], steps=job["steps"],
                               **({"sigma": job["sigma"]} if "sigma" in job else {}), **hp)
        if job["kind"] == "main":
            new, res = _main_rows(job, df, setting, s)
            rows += new
            main_results.append(res)
            settings[res["label"]] = setting
            if res["adaptive"]:
                scan.setdefault(job["rule"], []).append((job["hp"], res["delta"]))
        elif job["kind"] == "adai_scan":
            m = measure_equilibrium(df, 1.0, 4.5 * prediction(job["rule"], job["hp"])["tau"])
            scan.setdefault(job["rule"], []).append((job["hp"], m["delta"]))
        elif job["kind"] == "adam_l2":
            adam_l2.append((job, df, setting))
        else:
            rows += _rootfree_rows(job, df, setting)
        curves.append(_curves(job, df))
    rows += _ratio_rows(main_results, lambda r: settings[r["label"]])
    rows += _adam_l2_rows(adam_l2, s) + _adai_exponent_rows(scan)
    rows += sign_trust_rows.rows(cfg, NAME, VERSION) + rotational_rows.rows(cfg, NAME, VERSION)
    return rows_frame([r for r in rows if claim_selected(cfg, r["claim"])])


# --- figures -------------------------------------------------------------------------------------
def _curves(job, df) -> pd.DataFrame:
    t, r = series(df, "norm")
    _, r05 = series(df, "norm", "q05")
    _, r95 = series(df, "norm", "q95")
    _, delta = series(df, "delta")
    pred_r = np.nan
    if job["kind"] in ("main", "adai_scan"):
        p = prediction(job["rule"], job["hp"])
        y0, ys = 1.0, p["norm"] ** (2 * (p["k"] + 1))
        pred_r = (ys + (y0 - ys) * np.exp(-t / p["tau"])) ** (1 / (2 * (p["k"] + 1)))
    return pd.DataFrame({"rule": job["rule"], "label": job["label"], "kind": job["kind"],
                         "step": t, "measured": r, "measured_q05": r05, "measured_q95": r95,
                         "predicted": pred_r, "delta": delta})


def plot(results: pd.DataFrame, cfg: VerifyConfig):
    out = []
    res = results[results["claim"].isin(["equilibrium.delta", "equilibrium.adai_delta",
                                         "equilibrium.adam_l2", "equilibrium.rootfree_delta",
                                         "equilibrium.lion_delta", "equilibrium.lamb_delta"])]
    if not res.empty:
        fig, axes = figures.grid(1, 1, width=6.4, height=0.32 * len(res) + 1.6)
        figures.forest(axes[0, 0], res, "equilibrium (or constant) rms angular step Δ* (rad)")
        axes[0, 0].set_title("Δ* per rule on the noise toy (d = 64): predicted vs measured")
        out.append(figures.save(fig, cfg.family_dir(NAME) / "equilibria_delta.png"))
    path = cfg.family_dir(NAME) / "curves.csv"
    if path.exists():
        c = pd.read_csv(path)
        main = c[c["kind"] == "main"].assign(rule=lambda f: f["label"])
        if not main.empty:
            fig, axes = figures.grid(1, 1, width=6.4, height=3.6)
            figures.predicted_vs_measured(axes[0, 0], main, keys=("rule",), outside=True,
                                          ylabel="weight norm ‖w_t‖ (units of ‖w_0‖)")
            axes[0, 0].set_title("relaxation to the equilibrium norm (τ with projection lag)")
            out.append(figures.save(fig, cfg.family_dir(NAME) / "equilibria_norm.png"))
    return out

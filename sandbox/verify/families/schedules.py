r"""Claim family ``schedules``: r_t, Δ_t and ‖g_t‖/‖w_t‖ of a scale-invariant weight along a
learning-rate schedule, and the late-training rise of ‖g‖/‖w‖ that corrected weight decay removes
(theory §7; ``theory.schedules``; Defazio 2025 for the rise and its correction).

Rules are selected by traits, not names: every registered rule is run where
:func:`sandbox.experiments.schedule_toy.predict_schedule` covers it (its stages are modelled, or
their size law is 'sign' or 'corrected_decay'); a rule the theory does not cover (a trust ratio, a
rotation, Adai, root-free, Adam with L2, Nesterov) is measured and REPORTED in full mode. Quick
mode keeps one rule per trait signature (homogeneity, momentum kind, projection, decay coupling,
size laws), without the projected SGD rules and OneCycle (the ≤ 60 CPU-s budget of
``verify --quick``; both are full mode's). Settings by homogeneity (validated against direct simulation in
``tests/test_theory_schedules.py``; the verify runs use other seeds and, in full mode, other
lengths): k = 0 rules warm-up (100 steps) + cosine over T steps, peak 0.05, λ = 0.05,
betas (0.9, 0.99), eps = 0, d = 64, r0 = 2; k = 1 rules the same schedule at peak 0.1, momentum
0.9, λ = 5e-3, r0 = 8; sign updates (Lion) cosine over 8/3·T steps, peak 2e-3, λ = 0.1, d = 32,
r0 = 3. T = 1000 (quick, 256 replicas in 8 jackknife groups) or 6000 (full, 2048 replicas).

Verdict rules, fixed before any verify run (tolerances as in the theory's own tests):

- ``schedule.trajectory.{norm,delta,grad_ratio}``: the largest relative deviation
  max_t |m̃_t/p̃_t − 1| of the measured rms (m) from the prediction (p), both smoothed by the same
  centred moving average over n = round(1/(1 − β_mem)) steps (β_mem: the momentum's memory;
  Lion: β2), over the window t ≥ 3/(1 − β_mem) and γ_t ≥ 1% of the peak (float32 cannot resolve
  smaller angular steps). Predicted 0; tolerance r 0.05, Δ and ‖g‖/‖w‖ 0.10 (absolute, on the
  relative deviation); jackknife interval over replica groups.
- ``schedule.late_rise``: max of smoothed ‖g‖/‖w‖ over the last 10% of the run / its minimum from
  the end of the peak on (:func:`theory.schedules.late_rise` on the smoothed series), measured
  against the same statistic of the prediction (relative 10%). Corrected rules predict ≈ 1 (flat:
  Defazio's claim), AdamW/SGDM a rise (> 1.5), AdamP a rise muted by its lag (≈ 1.05 at T = 3000;
  the rise returns in long runs: ``schedule.projection_long_run``, full mode, T = 60000).
- ``schedule.corrected_delta``: corrected rules, second half of the run where γ_t > 5% of the
  peak: max/min of smoothed Δ_t/γ_t minus 1 (Δ_t ∝ γ_t once r sits at its constant target),
  measured against the predicted value (absolute 0.05).
- ``schedule.sgd_steady``: plain SGD (no momentum) at a constant lr, ‖g‖/‖w‖ at steady state
  against Defazio's sqrt(2λ/γ) (relative 5%; rms over t ≥ 3τ, τ = 1/(4γλ), started at r*).
- ``schedule.not_covered``: OneCycle (torch's OneCycleLR sequence) and rules without a schedule
  theory: the measured late rise, REPORTED without a prediction (no extrapolation).
- ``schedule.nets.late_rise`` / ``schedule.nets.norm``: per scale-invariant layer of a BN net
  under cosine (full mode, or ``--only``): :mod:`.schedules_nets`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

import sandbox
from sandbox.experiments.run_cache import cached, stable_seed
from sandbox.experiments.schedule_toy import (QUANTITIES, NotCovered, group_ids, predict_schedule,
                                              rms_series, run_schedule_toy)
from sandbox.verify.applicability import size_laws
from sandbox.verify.base import VerifyConfig
from sandbox.verify.intervals import jackknife
from sandbox.verify.rows import TidyLog, claim_selected, make_row, progress, rows_frame, setting_text
from theory.schedules import rise_statistic, schedule

TITLE = "Schedules: r_t, Δ_t, ‖g‖/‖w‖ along an lr schedule; corrected decay (theory §7)"
NAME = "schedules"
VERSION = 1
COST = {"quick": 8, "full": 490}  # measured CPU seconds (2 shared cores, one torch thread)
TRAJECTORY = ("schedule.trajectory.norm", "schedule.trajectory.delta",
              "schedule.trajectory.grad_ratio")
CLAIMS = TRAJECTORY + ("schedule.late_rise", "schedule.corrected_delta", "schedule.sgd_steady",
                       "schedule.projection_long_run", "schedule.not_covered",
                       "schedule.nets.late_rise", "schedule.nets.late_rise_constant_g",
                       "schedule.nets.norm")
SIZE_LAWS = ("corrected_decay",)  # the size law whose rules this family checks
TOLERANCE = {"norm": 0.05, "delta": 0.10, "grad_ratio": 0.10}
RISE_TOL, CORRECTED_TOL, STEADY_TOL = 0.10, 0.05, 0.05
MIN_GAMMA = 0.01  # of the peak: float32 resolves Δ_t above this
GROUPS = 8


def sizes(cfg: VerifyConfig) -> dict:
    if cfg.quick:
        return {"steps": 1000, "replicas": 256, "all_rules": False, "long": False}
    return {"steps": 6000, "replicas": 2048, "all_rules": True, "long": True}


# --- settings by traits ----------------------------------------------------------------------------
def setting(name: str, steps: int) -> dict:
    """The toy setting of a rule, chosen from its homogeneity and size laws (module docstring)."""
    spec = sandbox.info(name)
    laws = size_laws(name)
    d = spec.defaults
    hp: dict = {"batch_size": 1} if "batch_size" in d else {}  # root-free: B = 1 on the toy
    if "sign" in laws:
        sched = schedule("cosine", int(steps * 8 / 3), 2e-3)
        hp.update(weight_decay=0.1, betas=(0.9, 0.99))
        return {"sched": sched, "hp": hp, "d": 32, "r0": 3.0, "beta_mem": 0.99}
    if spec.homogeneity == 1:
        sched = schedule("warmup_cosine", steps, 0.1, warmup=100)
        hp.update(weight_decay=5e-3)
        if "momentum" in d:
            hp["momentum"] = 0.9
        return {"sched": sched, "hp": hp, "d": 64, "r0": 8.0, "beta_mem": 0.9}
    sched = schedule("warmup_cosine", steps, 0.05, warmup=100)
    hp.update(weight_decay=0.05)
    if "betas" in d:
        hp["betas"] = (0.9, 0.99)
    if "momentum" in d:
        hp["momentum"] = 0.9
    if "eps" in d:
        hp["eps"] = 0.0
    return {"sched": sched, "hp": hp, "d": 64, "r0": 2.0, "beta_mem": 0.9}


def _signature(name: str) -> tuple:
    spec = sandbox.info(name)
    return (spec.homogeneity, spec.momentum_kind, spec.projected, spec.decay, size_laws(name))


def spec_is_projected_sgd(name: str) -> bool:
    """SGDP-type rules (k = 1, projected): quick mode leaves them to full mode (their projection
    law is AdamP's, which quick mode checks; the ≤ 60 CPU-s budget of ``verify --quick``)."""
    spec = sandbox.info(name)
    return spec.homogeneity == 1 and spec.projected


def jobs(cfg: VerifyConfig) -> list[dict]:
    """One run per rule (quick: the covered rules, one per trait signature)."""
    s = sizes(cfg)
    out, seen = [], set()
    for name in sandbox.available():
        sig = _signature(name)
        if not s["all_rules"] and (sig in seen or spec_is_projected_sgd(name)):
            continue  # decided before the prediction is integrated
        job = {"rule": name, **setting(name, s["steps"])}
        try:
            job["traj"] = predict_schedule(name, job["sched"], job["d"], r0=job["r0"], **job["hp"])
        except NotCovered as e:
            if not s["all_rules"]:
                continue
            job["traj"], job["why"] = None, str(e)
        seen.add(sig)
        out.append(job)
    rules = cfg.extra.get("rules")
    return [j for j in out if rules is None or j["rule"] in rules]


def _measure(cfg: VerifyConfig, job: dict, gamma=None, label: str = "") -> pd.DataFrame:
    s = sizes(cfg)
    gamma = job["sched"].gamma if gamma is None else gamma
    label = label or job["rule"]
    key = {"family": NAME, "v": VERSION, "rule": job["rule"], "label": label, "hp": job["hp"],
           "gamma": [float(gamma[0]), float(gamma.max()), float(gamma[-1]), len(gamma)],
           "d": job["d"], "r0": job["r0"], "replicas": s["replicas"], "seed": cfg.seed}
    return cached(cfg.family_dir(NAME) / "runs", key, lambda: run_schedule_toy(
        job["rule"], gamma, replicas=s["replicas"], d=job["d"], r0=job["r0"], groups=GROUPS,
        seed=cfg.seed + stable_seed(NAME + label), device=cfg.device, **job["hp"]))


# --- statistics ------------------------------------------------------------------------------------
def smooth(x: np.ndarray, n: int) -> np.ndarray:
    """Centred moving average over n steps (the ends averaged over what exists)."""
    if n <= 1:
        return np.asarray(x, float)
    k = np.ones(n)
    return np.convolve(x, k, "same") / np.convolve(np.ones_like(x), k, "same")


def corrected_spread(delta: np.ndarray, gamma: np.ndarray) -> float:
    late = (gamma > 0.05 * gamma.max()) & (np.arange(len(gamma)) > len(gamma) // 2)
    ratio = delta[late] / gamma[late]
    return float(ratio.max() / ratio.min() - 1)


def predicted_series(traj) -> dict:
    """{quantity: the trajectory's predicted series} (quantities of the toy's table)."""
    return {"norm": traj.r, "delta": traj.delta, "grad_ratio": traj.grad_ratio}


def _stats(df: pd.DataFrame, gamma: np.ndarray, n: int, ok, pred: dict, leave_out=None) -> dict:
    """The scalar statistics of one (leave-one-group-out) table; ``pred``: the predicted series
    already smoothed over ``n`` steps (empty without a prediction), ``ok`` their window."""
    smoothed = {q: smooth(rms_series(df, q, leave_out)[1], n) for q in QUANTITIES}
    out = {"rise": rise_statistic(gamma, smoothed["grad_ratio"]),
           "spread": corrected_spread(smoothed["delta"], gamma)}
    for q, p in pred.items():
        out["dev_" + q] = float(np.max(np.abs(smoothed[q][ok] / p[ok] - 1)))
    return out


def _with_interval(df: pd.DataFrame, job: dict) -> tuple[dict, dict]:
    """(statistics, their jackknife intervals); the schedule is read from the table (every step
    is recorded) and the predictions are smoothed once."""
    t, gamma = df.drop_duplicates("step")[["step", "gamma"]].to_numpy().T
    n = int(round(1 / (1 - job["beta_mem"])))
    ok = (t >= 3 / (1 - job["beta_mem"])) & (gamma >= MIN_GAMMA * gamma.max())
    pred = {} if job.get("traj") is None else \
        {q: smooth(v, n) for q, v in predicted_series(job["traj"]).items() if q in TOLERANCE}
    full = _stats(df, gamma, n, ok, pred)
    return full, jackknife(full, [_stats(df, gamma, n, ok, pred, g) for g in group_ids(df)])


def _predicted(job: dict) -> dict:
    traj, n = job["traj"], int(round(1 / (1 - job["beta_mem"])))
    g = job["sched"].gamma
    return {"rise": rise_statistic(g, smooth(traj.grad_ratio, n)),
            "spread": corrected_spread(smooth(traj.delta, n), g)}


# --- rows ------------------------------------------------------------------------------------------
def rule_rows(cfg: VerifyConfig, job: dict, df: pd.DataFrame) -> list[dict]:
    full, ci = _with_interval(df, job)
    sched = job["sched"]
    setting_ = setting_text(schedule=sched.kind, steps=len(sched.gamma), peak=sched.peak,
                            d=job["d"], r0=job["r0"], replicas=sizes(cfg)["replicas"], **job["hp"])
    rule = job["rule"]
    if job["traj"] is None:
        return [make_row(NAME, "schedule.not_covered", rule, setting_, None, full["rise"], 0.0,
                         status="open", interval=ci["rise"],
                         note=f"late rise of ‖g‖/‖w‖ measured; no prediction: {job['why']}")]
    rows = [make_row(NAME, f"schedule.trajectory.{q}", rule, setting_, 0.0, full["dev_" + q],
                     TOLERANCE[q], "absolute", interval=ci["dev_" + q],
                     note="largest relative deviation of the smoothed rms from the prediction "
                          f"(t ≥ {3 / (1 - job['beta_mem']):.0f}, γ ≥ {MIN_GAMMA:g}·peak)")
            for q in TOLERANCE]
    pred = _predicted(job)
    corrected = "corrected_decay" in size_laws(rule)
    rows.append(make_row(NAME, "schedule.late_rise", rule, setting_, pred["rise"], full["rise"],
                         RISE_TOL, interval=ci["rise"],
                         note=("corrected decay: flat predicted" if corrected else
                               "uncorrected: the rise follows 1/γ_t, limited by the lag τ_t ∝ 1/γ_t")))
    if corrected:
        rows.append(make_row(NAME, "schedule.corrected_delta", rule, setting_, pred["spread"],
                             full["spread"], CORRECTED_TOL, "absolute", interval=ci["spread"],
                             note="max/min of Δ_t/γ_t − 1, second half, γ > 5% peak"))
    return rows


def sgd_steady_rows(cfg: VerifyConfig) -> list[dict]:
    """Defazio's steady state of plain SGD: ‖g‖/‖w‖ = sqrt(2λ/γ) (started at r*, window t ≥ 3τ)."""
    gamma, lam, d, steps = 0.1, 0.01, 64, 2000
    r_star = (gamma * (d - 1) / (2 * lam)) ** 0.25
    job = {"rule": "sgd", "hp": {"weight_decay": lam, "momentum": 0.0}, "d": d, "r0": r_star,
           "beta_mem": 0.0, "traj": None}
    df = _measure(cfg, job, gamma=np.full(steps, gamma), label="sgd_steady")
    start = int(3 / (4 * gamma * lam))

    def stat(leave_out=None):
        t, m = rms_series(df, "grad_ratio", leave_out)
        return {"ratio": float(np.sqrt(np.mean(m[t >= start] ** 2)))}
    full = stat()
    ci = jackknife(full, [stat(g) for g in group_ids(df)])
    pred = float(np.sqrt(2 * lam / gamma))
    return [make_row(NAME, "schedule.sgd_steady", "sgd",
                     setting_text(lr=gamma, weight_decay=lam, d=d, steps=steps), pred,
                     full["ratio"], STEADY_TOL, interval=ci["ratio"],
                     note=f"rms ‖g‖/‖w‖ over t ≥ {start}; sqrt(2λ/γ)")]


def onecycle(steps: int, peak: float) -> np.ndarray:
    """torch's OneCycleLR learning rates over ``steps`` steps (a schedule outside the theory)."""
    import torch

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak)
    sch = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peak, total_steps=steps)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    return np.asarray(out)


def onecycle_rows(cfg: VerifyConfig, rules=("adamw", "adamc")) -> list[dict]:
    rows = []
    for rule in rules:
        if rule not in sandbox.available():
            continue
        job = {**setting(rule, sizes(cfg)["steps"]), "rule": rule, "traj": None}
        gamma = onecycle(len(job["sched"].gamma), job["sched"].peak)
        df = _measure(cfg, job, gamma=gamma, label=rule + "_onecycle")
        full, ci = _with_interval(df, job)
        rows.append(make_row(NAME, "schedule.not_covered", rule,
                             setting_text(schedule="onecycle", steps=len(gamma), peak=float(gamma.max()),
                                          **job["hp"]), None, full["rise"], 0.0, status="open",
                             interval=ci["rise"],
                             note="OneCycleLR: not a covered schedule; late rise measured, not predicted"))
    return rows


def long_run_rule() -> str | None:
    """The first registered projected Adam-type rule (k = 0, decoupled decay, no size law)."""
    return next((n for n in sandbox.available() if sandbox.info(n).projected
                 and sandbox.info(n).homogeneity == 0 and not size_laws(n)
                 and sandbox.info(n).decay == "decoupled"), None)


def long_run_rows(cfg: VerifyConfig) -> list[dict]:
    """AdamP's rise returns in a run much longer than its lag (T = 60000, 64 replicas)."""
    rule = long_run_rule()
    if rule is None:
        return []
    job = {**setting(rule, 60000), "rule": rule}
    job["traj"] = predict_schedule(rule, job["sched"], job["d"], r0=job["r0"], **job["hp"])
    df = cached(cfg.family_dir(NAME) / "runs", {"family": NAME, "v": VERSION, "long": rule,
                                                  "seed": cfg.seed, "hp": job["hp"]},
                lambda: run_schedule_toy(rule, job["sched"], replicas=64, d=job["d"],
                                         r0=job["r0"], groups=GROUPS, every=1,
                                         seed=cfg.seed + stable_seed("long"), **job["hp"]))
    full, ci = _with_interval(df, job)
    pred = _predicted(job)
    return [make_row(NAME, "schedule.projection_long_run", rule,
                     setting_text(schedule="warmup_cosine", steps=60000, replicas=64, **job["hp"]),
                     pred["rise"], full["rise"], RISE_TOL, interval=ci["rise"],
                     note="projection mutes the rise by lag only: it returns when T ≫ τ")]


def curves(job: dict, df: pd.DataFrame, points: int = 400) -> pd.DataFrame:
    """Predicted and measured series, thinned to ~``points`` steps, for the figures."""
    frames = []
    for q in ("norm", "delta", "grad_ratio"):
        t, m = rms_series(df, q)
        keep = np.unique(np.linspace(0, len(t) - 1, points).astype(int))
        p = predicted_series(job["traj"])[q][t[keep]] if job.get("traj") is not None else None
        frames.append(pd.DataFrame({"rule": job["rule"], "quantity": q, "step": t[keep],
                                    "gamma": job["sched"].gamma[t[keep]], "measured": m[keep],
                                    "predicted": p if p is not None else np.nan}))
    return pd.concat(frames, ignore_index=True)


def run(cfg: VerifyConfig) -> pd.DataFrame:
    log = TidyLog(cfg.family_dir(NAME) / "curves.csv")
    rows: list[dict] = []
    work = [(j["rule"], j) for j in jobs(cfg)]
    if any(claim_selected(cfg, c) for c in CLAIMS[:5]):
        for _, job in progress(cfg, work, desc=NAME):
            df = _measure(cfg, job)
            rows += rule_rows(cfg, job, df)
            log.append(curves(job, df))
    if claim_selected(cfg, "schedule.sgd_steady"):
        rows += sgd_steady_rows(cfg)
    if claim_selected(cfg, "schedule.not_covered") and (not cfg.quick or cfg.only is not None):
        rows += onecycle_rows(cfg)  # REPORTED only: full mode, or quick mode with --only
    if sizes(cfg)["long"] and claim_selected(cfg, "schedule.projection_long_run"):
        rows += long_run_rows(cfg)
    if (sizes(cfg)["long"] or cfg.only is not None) and claim_selected(cfg, "schedule.nets.*"):
        from .schedules_nets import rows as net_rows  # per layer in a BN net (full mode)

        rows += net_rows(cfg, cfg.family_dir(NAME) / "nets")
    return rows_frame([r for r in rows if claim_selected(cfg, r["claim"])])


def plot(results: pd.DataFrame, cfg: VerifyConfig):
    """``schedules.png``: the rules with a prediction; ``schedules_reported_<i>.png``: the rules
    measured without one (up to 7 rules a figure)."""
    from .schedules_figures import MAX_RULES, plot_trajectories

    path = cfg.family_dir(NAME) / "curves.csv"
    if not path.exists():
        return []
    curves = pd.read_csv(path)
    covered = curves.groupby("rule", sort=False)["predicted"].apply(lambda p: p.notna().any())
    out = []
    if covered.any():
        part = curves[curves["rule"].isin(covered[covered].index)]
        out.append(plot_trajectories(part, cfg.family_dir(NAME) / "schedules.png"))
    rest = list(covered[~covered].index)
    for i in range(0, len(rest), MAX_RULES):
        part = curves[curves["rule"].isin(rest[i:i + MAX_RULES])]
        out.append(plot_trajectories(part, cfg.family_dir(NAME) / f"schedules_reported_{i // MAX_RULES}.png"))
    return out

r"""Rows of the ``schedules`` family in a small BN net (not a family itself): per scale-invariant
layer, the late rise of ‖g‖/‖w‖ and the final norm under a cosine schedule, predicted by
``theory.schedules`` and measured with the probes (:mod:`sandbox.experiments.schedule_nets`).

Setting: digits-bnmlp, only the scale-invariant weights train (the noise-dominated regime; see
``schedule_nets``), cosine over 3000 steps, peak lr 1e-2, λ = 0.5, betas (0.9, 0.99), probes every
10 steps. Rules: the registered rules of homogeneity 0 that ``predict_schedule`` covers (AdamW,
AdamP, AdamC; selected by traits), and the rotational rules of the same base REPORTED.

Verdict rule, written before any prediction was computed (the measured rises of seeds 0–2 had
been seen while building the notebook: AdamW ≈ 2, AdamC ≈ 1.1; the graded runs use seeds 3–7):
- prediction: ``theory.integrate_schedule`` picked up at t_s = 300 = 3/(1 − β2) with
  ``stationary_start`` (the optimizer's buffers are warm there), r0 = the rms over seeds of the
  layer's measured norm at t_s, d = the layer's number of elements, G = r‖g‖ constant (the
  theory's noise-dominated assumption; its measured drift is in the note), eps → 0;
- ``schedule.nets.late_rise``: the late rise of ‖g‖/‖w‖ (``schedule_nets.late_rises``: trailing
  rms over 300 steps, tail 10%) over steps ≥ t_s, the same statistic on the predicted series at
  the recorded steps; measured = mean over seeds with its t interval; tolerance 15% (the ``nets``
  family's tolerance for real nets);
- ``schedule.nets.norm``: the rms norm at the last record against the predicted r_T (15%).

RESTATED after the first run of that rule (seeds 3–7): with G constant the predicted AdamW rise
(3.4 and 3.1 in the two layers) was refuted by the measured 1.88 [1.79, 1.97] and 1.97
[1.86, 2.08] (FAIL). The assumption failed, not the norm dynamics: the net's scale-free gradient
r‖g‖ falls by ×0.6 over the run as the loss decreases, which the noise toy cannot have. What the
theory predicts in a net is r_t (for k = 0 independent of G), hence ‖g‖/‖w‖ = G_t/r_t² GIVEN the
measured G_t: ``schedule.nets.late_rise`` is that conditional prediction; the constant-G form
stays as ``schedule.nets.late_rise_constant_g`` (REPORTED, the finding). Validated on seeds 8–12
(full-mode runs with ``cfg.extra['schedule_net_seeds']``), which were not used to restate it.
Full mode only (20 runs of ~5 CPU-s), or quick mode when ``--only`` names these claims.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

import sandbox
from sandbox.experiments.schedule_nets import HP, late_rises, net_schedule, run_schedule_nets
from sandbox.experiments.schedule_toy import NotCovered, predict_schedule
from sandbox.verify.applicability import size_laws
from sandbox.verify.rows import make_row, setting_text
from theory.schedules import Schedule

CLAIMS = ("schedule.nets.late_rise", "schedule.nets.late_rise_constant_g", "schedule.nets.norm")
PROBLEM, START, WINDOW, TOL = "digits-bnmlp", 300, 300, 0.15
SEEDS = (3, 4, 5, 6, 7)


def net_rules() -> list[str]:
    """Adam-type rules (k = 0, EMA momentum, decoupled decay, no sign): the covered ones and the
    rotational variants of the same base (REPORTED)."""
    out = []
    for n in sandbox.available():
        spec, laws = sandbox.info(n), size_laws(n)
        if spec.homogeneity == 0 and spec.momentum_kind == "ema" and spec.decay == "decoupled" \
                and "sign" not in laws and "trust_ratio" not in laws:
            out.append(n)
    return out


def _layer_sizes() -> dict[str, int]:
    from sandbox.problems import get_problem

    return {n: p.numel() for n, p in get_problem(PROBLEM).build(0).named_parameters()}


def _interval(v: np.ndarray) -> tuple[float, tuple[float, float]]:
    m = float(np.mean(v))
    if len(v) < 2:
        return m, (float("nan"), float("nan"))
    h = float(stats.t.ppf(0.975, len(v) - 1) * np.std(v, ddof=1) / np.sqrt(len(v)))
    return m, (m - h, m + h)


def update_size_ratio(rule: str, layer_rows: pd.DataFrame, d: int) -> float:
    """The layer's measured update size per unit lr, A = rms(Δ_t r_t/γ_t) over t ∈ [START,
    START + WINDOW), divided by the toy's (pure-noise Gaussian gradients, ``theory.toy``): the
    growth term of the norm recurrence scales with A², so A below the toy's means a norm below
    the prediction."""
    from sandbox.optim.traits import rule_traits
    from theory.toy import toy_update_size_sq

    w = layer_rows[(layer_rows["step"] >= START) & (layer_rows["step"] < START + WINDOW)]
    a = float(np.sqrt(np.mean((w["delta"] * w["norm"] / w["lr"]) ** 2)))
    hp = dict(HP)
    if "corrected_decay" in size_laws(rule):
        hp["normalized"] = True
    return a / float(np.sqrt(toy_update_size_sq(rule_traits(rule, **hp), d)))


def prediction(rule: str, layer_rows: pd.DataFrame, d: int, sched: Schedule) -> dict:
    """Predicted late rise (``given_g``: with the measured scale-free gradient G_t = r‖g‖, rms over
    seeds; ``constant_g``: with G constant) and final norm of one layer; raises NotCovered."""
    at = layer_rows[layer_rows["step"] == START]
    r0 = float(np.sqrt(np.mean(at["norm"] ** 2)))
    piece = Schedule(sched.kind, sched.gamma[START:], dict(sched.params))
    extra = {"lr_max": sched.peak} if "corrected_decay" in size_laws(rule) else {}
    traj = predict_schedule(rule, piece, d, r0=r0, stationary_start=True, eps=0.0, **extra, **HP)
    late = layer_rows[layer_rows["step"] >= START]
    g2 = (late["grad_norm"] * late["norm"]) ** 2
    G = np.sqrt(g2.groupby(late["step"]).mean())
    steps = G.index.to_numpy().astype(int)
    r = traj.r[steps - START]

    def rise(ratio):
        series = pd.DataFrame({"rule": rule, "seed": 0, "layer": "x", "step": steps,
                               "lr": sched.gamma[steps], "grad_ratio": ratio})
        return float(late_rises(series, window=WINDOW)["late_rise"].iloc[0])
    return {"given_g": rise(G.to_numpy() / r ** 2), "constant_g": rise(1.0 / r ** 2),
            "norm": float(r[-1])}


def rows(cfg, out_dir) -> list[dict]:
    """Run (or read back) the net runs of the selected rules and return their rows."""
    rules = [r for r in net_rules() if cfg.extra.get("rules") is None or r in cfg.extra["rules"]]
    seeds = tuple(cfg.extra.get("schedule_net_seeds", SEEDS))
    table = run_schedule_nets(out_dir, rules=rules, seeds=seeds, problem=PROBLEM,
                              device=cfg.device)
    return table_rows(table, net_schedule())


def table_rows(table: pd.DataFrame, sched: Schedule) -> list[dict]:
    """The rows of a :func:`~sandbox.experiments.schedule_nets.run_schedule_nets` table run
    under ``sched`` (the verdict rule of the module docstring)."""
    rules = list(dict.fromkeys(table["rule"]))
    seeds = table["seed"].unique()
    sizes = _layer_sizes()
    late = table[table["step"] >= START]
    rises = late_rises(late, window=WINDOW)
    out = []
    setting = setting_text(problem=PROBLEM, schedule="cosine", steps=len(sched.gamma),
                           peak=sched.peak, seeds=len(seeds), **HP)
    for rule in rules:
        for layer, g in table[table["rule"] == rule].groupby("layer", sort=False):
            last = g[g["step"] == g["step"].max()]
            rise_m, rise_ci = _interval(rises[(rises["rule"] == rule) & (rises["layer"] == layer)]
                                        ["late_rise"].to_numpy())
            norm_m, norm_ci = _interval(last["norm"].to_numpy())
            gt = g.assign(G=g["grad_norm"] * g["norm"]).groupby("step")["G"].mean()
            drift = float(gt[gt.index >= g["step"].max() - WINDOW].mean()
                          / gt[(gt.index >= START) & (gt.index < START + WINDOW)].mean())
            try:
                p = prediction(rule, g, sizes[layer], sched)
                status, why = None, ""
            except NotCovered as e:
                p = {"given_g": None, "constant_g": None, "norm": None}
                status, why = "open", f"; no prediction: {e}"
            note = (f"layer {layer} (d = {sizes[layer]}); theory picked up at t = {START} "
                    f"(stationary start); scale-free gradient r‖g‖ drifts ×{drift:.2f} from "
                    f"t = {START} to the end (assumed constant); update size A = Δr/γ over "
                    f"t ∈ [{START}, {START + WINDOW}): measured / the toy's "
                    f"{update_size_ratio(rule, g, sizes[layer]):.2f}{why}")
            out.append(make_row("schedules", "schedule.nets.late_rise", rule, setting,
                                p["given_g"], rise_m, TOL, status=status, interval=rise_ci,
                                note="‖g‖/‖w‖ predicted as G_t/r_t² with r_t from the theory and "
                                     "the measured G_t (rms over seeds); " + note))
            out.append(make_row("schedules", "schedule.nets.late_rise_constant_g", rule, setting,
                                p["constant_g"], rise_m, TOL, status="open", interval=rise_ci,
                                note="the theory's own assumption G = r‖g‖ constant: REFUTED in "
                                     "this net (first verdict rule; kept as a finding); " + note))
            out.append(make_row("schedules", "schedule.nets.norm", rule, setting, p["norm"],
                                norm_m, TOL, status=status, interval=norm_ci, note=note))
    return out

r"""Theory §1: exact identities on scale-invariant weights, checked to float64 round-off at every
step, through the registry's real optimizers on the batched toys.

Claims (predictions from ``theory.identities``; ``exp_lr_decoupled`` for decoupled decay):

- ``identity.orthogonality`` — ⟨w, ∇f(w)⟩ = 0 and ∇f(cw) = ∇f(w)/c on every toy (AdamP §2).
- ``identity.gd`` — r_{t+1}² = r_t² + η²‖g_t‖²; unprojected rules of degree k = 1 with heavy-ball
  momentum set to 0 (their update is then −η g). Projected rules are not GD: AdamP's channel view
  can fire by chance on a weight that is only invariant as a whole (both rows' |cos| happen to be
  below δ/sqrt(L)), and then projects row by row, so q_t ≠ g_t — they are checked by
  ``identity.projected`` with the measured ‖q_t‖.
- ``identity.heavy_ball`` — r_{t+1}² = r_t² + η²‖p_t‖² + 2η² Σ_{k<t} β^{t−k}‖p_k‖² (AdamP lemma),
  p_t = (w_t − w_{t+1})/η measured; unprojected k = 1 rules with heavy-ball or EMA momentum β = 0.9.
- ``identity.projected`` — r_{t+1}² = a² r_t² + η²‖q_t‖² for every projected rule, without decay
  (a = 1, the catalogue's form) and with weight decay, a = 1 − η λ_eff (``theory.effective_decay``:
  λ·wd_ratio(/(1−β)) decoupled, 0 for a coupled L2 that the projection removes).
- ``identity.exp_lr`` / ``identity.exp_lr_momentum`` — weight decay ≡ exponential learning rate
  (Li & Arora, ICLR 2020): a run with decay and a run without, at η_t = η α^{−2t−1}, keep the same
  directions, with ‖x_t‖/‖w_t‖ = α^{−t}. Coupled L2 (torch SGD): α from x² − (1+γ−ηλ)x + γ = 0 and
  the no-decay run's buffer started at −(1−α)/(αη)·w_0 (``theory.exp_lr_state_map``); decoupled
  (SGDP): α = 1 − ηλ_eff, momentum γα, zero buffers (``theory.identities.exp_lr_decoupled``). With γ > 0 and
  both buffers at zero (the catalogue's wording) the runs differ: REPORTED with the measured angle.

The exact limit (every ``eps``/``proj_eps`` = 0, :func:`~sandbox.verify.applicability.exact_limit`)
is used throughout: AdamP's ŵ = w/(‖w‖ + eps) is otherwise off by O(eps/‖w‖). Each measured
number is the maximum residual over all steps and replicas; tolerances are fixed a priori as
round-off budgets: 1e-12 for one gradient evaluation, 1e-10 relative for whole trajectories.
The rotational variants (§7): ``identity.rotational_first_step`` / ``_norm``, :mod:`.rotational_rows`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

import sandbox
import theory
from sandbox.measure import log_schedule
from sandbox.toys import (CosineToy, NoiseDrivenToy, NormalizedLinearToy, RayleighQuotientToy)
from sandbox.verify import figures
from sandbox.verify.applicability import (claim_hyperparameters, exact_limit, momentum_hyper,
                                          rules_where, theory_traits)
from sandbox.verify.base import VerifyConfig
from sandbox.verify.rows import (TidyLog, claim_selected, make_row, progress, rows_frame,
                                 setting_text)
from sandbox.verify.tracking import angle_between, new_optimizer, prime_state, replica_rows, track
from theory.identities import exp_lr_decoupled

from . import rotational_rows

TITLE = "Exact identities on scale-invariant weights (theory §1)"
NAME = "identities"
# measured CPU seconds (2 shared cores, one torch thread): sizes the progress bar (sandbox.verify.runner.family_cost)
COST = {"quick": 8, "full": 112}
CLAIMS = ("identity.orthogonality", "identity.gd", "identity.heavy_ball", "identity.projected",
          "identity.exp_lr", "identity.exp_lr_momentum") + rotational_rows.IDENTITY_CLAIMS
SIZE_LAWS = rotational_rows.SIZE_LAWS  # laws of unmodelled stages checked here (§7)
TOL_EVAL, TOL_TRAJ = 1e-12, 1e-10
BETA, LAM_PROJ, LAM_EXP, ETA_EXP = 0.9, 0.1, 0.01, 0.1
ALL_TOYS = ("noise", "rayleigh", "cosine", "bn-linear", "ln-linear")
RUN_TOYS = ("noise", "bn-linear")  # a pure-noise toy (layer view) and a real BN layer (channel view)
LR_BY_DEGREE = {1: 0.1, 0: 0.01, -1: 1e-3}


def sizes(cfg: VerifyConfig) -> dict:
    return {"replicas": 32, "steps": 100} if cfg.quick else {"replicas": 256, "steps": 1000}


def make_toy(kind: str, replicas: int, seed: int, device: str):
    """The toys of this family: matrix-shaped so that AdamP's projection can act."""
    if kind == "noise":
        return NoiseDrivenToy(16, replicas, seed=seed, device=device, shape=(2, 8))
    if kind == "rayleigh":
        return RayleighQuotientToy(16, replicas, shape=(2, 8), seed=seed, device=device)
    if kind == "cosine":
        return CosineToy(2, replicas, shape=(1, 2), seed=seed, device=device)
    if kind in ("bn-linear", "ln-linear"):
        return NormalizedLinearToy(12, 6, replicas, batch=16, n_data=256, eps=0.0,
                                   norm="batch" if kind == "bn-linear" else "layer", seed=seed,
                                   device=device)
    raise ValueError(f"unknown toy {kind!r}; expected one of {ALL_TOYS}")


def batch_of(toy) -> int:
    return int(getattr(toy, "batch", getattr(toy, "batch_size", 1)))


def lr_for(name: str) -> float:
    return LR_BY_DEGREE.get(int(sandbox.info(name).homogeneity), 0.01)


# --- jobs: one (claim, rule, toy) unit of work each ----------------------------------------------
def _jobs(cfg: VerifyConfig) -> list[tuple]:
    jobs = [("identity.orthogonality", "(loss)", toy, {}) for toy in ALL_TOYS]
    gd = rules_where(lambda s: s.homogeneity == 1 and s.momentum_kind in ("heavy_ball", "none")
                     and not s.projected)
    hb = rules_where(lambda s: s.homogeneity == 1 and s.momentum_kind in ("heavy_ball", "ema")
                     and not s.projected)
    pr = rules_where(lambda s: s.projected)
    el = rules_where(lambda s: s.homogeneity == 1 and s.momentum_kind == "heavy_ball"
                     and (s.decay == "decoupled" or not s.projected))
    for toy in RUN_TOYS:
        jobs += [("identity.gd", r, toy, {}) for r in gd]
        jobs += [("identity.heavy_ball", r, toy, {}) for r in hb]
        jobs += [("identity.projected", r, toy, {"wd": wd}) for r in pr for wd in (0.0, LAM_PROJ)]
        for r in el:
            jobs += [("identity.exp_lr", r, toy, {"gamma": 0.0}),
                     ("identity.exp_lr_momentum", r, toy, {"gamma": BETA})]
            if sandbox.info(r).decay == "coupled":
                jobs.append(("identity.exp_lr_momentum", r, toy, {"gamma": BETA, "zero": True}))
    return [j for j in jobs if claim_selected(cfg, j[0])] + rotational_rows.identity_jobs(cfg)


def plan(cfg: VerifyConfig) -> list[tuple[str, str]]:
    """The (claim, rule) work units, for the runner's progress bar."""
    return [(c, r) for c, r, _, _ in _jobs(cfg)]


def run(cfg: VerifyConfig) -> pd.DataFrame:
    out = cfg.family_dir(NAME)
    curves = TidyLog(out / "curves.csv")
    rows = []
    torch.manual_seed(cfg.seed)
    for i, (claim, rule, toy, opts) in enumerate(progress(cfg, _jobs(cfg), desc=NAME)):
        fn = {"identity.orthogonality": _orthogonality, "identity.gd": _gd,
              "identity.heavy_ball": _heavy_ball, "identity.projected": _projected,
              "identity.exp_lr": _exp_lr, "identity.exp_lr_momentum": _exp_lr,
              **dict.fromkeys(rotational_rows.IDENTITY_CLAIMS, rotational_rows.identity_rows)}[claim]
        new_rows, curve = fn(cfg, claim, rule, toy, dict(opts, seed=cfg.seed + i))
        rows += new_rows
        curves.append(curve)
    return rows_frame(rows)


# --- claims -------------------------------------------------------------------------------------
def _orthogonality(cfg, claim, rule, kind, o):
    n = sizes(cfg)["replicas"]
    toy = make_toy(kind, n, o["seed"], cfg.device)
    noise = toy.draw_noise()
    w, g = toy.w, toy.gradient(toy.w, noise)
    blocks = toy.invariant_rows if hasattr(toy, "invariant_rows") else (lambda x: replica_rows(x, 1))
    wb, gb = blocks(w), blocks(g)
    cos = ((wb * gb).sum(-1) / (wb.norm(dim=-1) * gb.norm(dim=-1))).abs().max().item()
    worst = 0.0
    for c in (1e-3, 0.37, 1e3):
        gc = toy.gradient(c * w, noise)
        ref = theory.update_scaling(c, 1) * replica_rows(g, 1)
        err = ((replica_rows(gc, 1) - ref).norm(dim=-1) / ref.norm(dim=-1)).max().item()
        worst = max(worst, err)
    s = setting_text(toy=kind, R=n)
    return [make_row(NAME, claim, rule, s + " check=<w,g>=0 (max |cos|)", 0.0, cos, TOL_EVAL,
                     "absolute"),
            make_row(NAME, claim, rule, s + " check=grad f(cw)=grad f(w)/c, c in {1e-3,0.37,1e3}",
                     0.0, worst, TOL_EVAL, "absolute")], pd.DataFrame()


def _run(cfg, rule, kind, seed, lr, shrink=1.0, **overrides):
    sz = sizes(cfg)
    toy = make_toy(kind, sz["replicas"], seed, cfg.device)
    spec = sandbox.info(rule)
    hp = claim_hyperparameters(spec, lr, batch_of(toy), **{**exact_limit(spec), **overrides})
    tr = track(toy, new_optimizer(rule, toy, hp), sz["steps"], shrink=shrink)
    return tr, hp, sz


def _curve(claim, rule, kind, setting, pred, meas, resid, quantity, variant="") -> pd.DataFrame:
    """Medians/quantiles over replicas on a log schedule; ``resid`` is per (replica, step)."""
    steps = log_schedule(meas.shape[1], dense=20, per_decade=20)
    return pd.DataFrame({
        "claim": claim, "rule": rule, "toy": kind, "variant": variant, "setting": setting,
        "quantity": quantity,
        "step": steps, "predicted": np.median(pred[:, steps], 0),
        "measured": np.median(meas[:, steps], 0),
        "measured_q05": np.quantile(meas[:, steps], 0.05, 0),
        "measured_q95": np.quantile(meas[:, steps], 0.95, 0),
        "residual": resid[:, steps].max(0)})


def _norm_rows(claim, rule, kind, hp, tr, pred, tol, note=""):
    """Row and curve for a predicted r_t² sequence ``pred`` (replicas × T+1) vs tr['r_sq']."""
    meas = tr["r_sq"]
    resid = np.abs(pred - meas) / meas
    s = setting_text(toy=kind, **{k: v for k, v in hp.items() if k in (
        "lr", "momentum", "betas", "weight_decay", "batch_size")})
    if tr["fired"].size and sandbox.info(rule).projected:
        note = (note + "; " if note else "") + f"projection fired on {tr['fired'].mean():.0%} of replica-steps"
    note = (note + "; " if note else "") + f"median r_T^2/r_0^2 = {np.median(meas[:, -1] / meas[:, 0]):.4g}"
    row = make_row(NAME, claim, rule, s, 0.0, float(resid.max()), tol, "absolute", note=note)
    r0 = meas[:, :1]
    return [row], _curve(claim, rule, kind, s, pred / r0, meas / r0, resid, "r_sq/r0_sq")


def _gd(cfg, claim, rule, kind, o):
    spec = sandbox.info(rule)
    lr = lr_for(rule)
    tr, hp, _ = _run(cfg, rule, kind, o["seed"], lr, weight_decay=0.0, **momentum_hyper(spec, 0.0))
    pred = np.concatenate([tr["r_sq"][:, :1],
                           theory.gd_norm_sq_next(tr["r_sq"][:, :-1], lr, tr["grad_sq"])], axis=1)
    return _norm_rows(claim, rule, kind, hp, tr, pred, TOL_TRAJ, "one-step form, measured r_t")


def _heavy_ball(cfg, claim, rule, kind, o):
    spec = sandbox.info(rule)
    lr = lr_for(rule)
    tr, hp, _ = _run(cfg, rule, kind, o["seed"], lr, weight_decay=0.0, nesterov=False,
                     dampening=0.0, **momentum_hyper(spec, BETA))
    pred = theory.heavy_ball_norm_sq(tr["r_sq"][:, 0], lr, BETA, tr["update_sq"] / lr ** 2)
    return _norm_rows(claim, rule, kind, hp, tr, pred, TOL_TRAJ,
                      "whole sequence from r_0 and measured ||p_t||")


def _projected(cfg, claim, rule, kind, o):
    spec = sandbox.info(rule)
    lr, wd = lr_for(rule), o["wd"]
    extra = momentum_hyper(spec, BETA) if spec.momentum_kind == "heavy_ball" else {}
    hp0 = claim_hyperparameters(spec, lr, **{**exact_limit(spec), **extra, "weight_decay": wd})
    lam_eff = float(theory.effective_decay(wd, theory_traits(rule, hp0),
                                           wd_ratio={**spec.defaults, **hp0}["wd_ratio"]))
    a = 1.0 - lr * lam_eff
    tr, hp, _ = _run(cfg, rule, kind, o["seed"], lr, shrink=a, weight_decay=wd, **extra)
    pred = theory.projected_norm_sq(tr["r_sq"][:, 0], lr, tr["update_sq"] / lr ** 2,
                                    decay=lam_eff)
    return _norm_rows(claim, rule, kind, hp, tr, pred, TOL_TRAJ,
                      f"q_t = (a w_t - w_(t+1))/lr, a = 1 - lr*lam_eff = {a:.6g}")


def _exp_lr(cfg, claim, rule, kind, o):
    """Lockstep runs A (decay) and B (no decay, exponential lr) on two copies of the toy."""
    spec = sandbox.info(rule)
    sz = sizes(cfg)
    T, gamma, eta, lam = sz["steps"], o["gamma"], ETA_EXP, LAM_EXP
    toys = [make_toy(kind, sz["replicas"], o["seed"], cfg.device) for _ in range(2)]
    base = {**exact_limit(spec), **momentum_hyper(spec, gamma), "nesterov": False, "dampening": 0.0}
    hp_a = claim_hyperparameters(spec, eta, batch_of(toys[0]), **base, weight_decay=lam)
    buffer_key = next(s.key for s in spec.stages(hp_a) if s.name == "heavy_ball")
    w0 = toys[1].w.clone()
    if spec.decay == "coupled":
        alpha = theory.exp_lr_alpha(eta, lam, gamma)
        sched, mom_b = theory.exp_lr_schedule(eta, lam, T, gamma), gamma
        buf0 = torch.as_tensor(theory.exp_lr_state_map(w0.cpu().numpy(), 0.0, 0, eta, lam, gamma)[1],
                               dtype=w0.dtype, device=w0.device)
        how = "coupled L2, theory.exp_lr_schedule, primed buffer"
    else:
        lam_eff = float(theory.effective_decay(lam, theory_traits(rule, hp_a),
                                               wd_ratio={**spec.defaults, **hp_a}["wd_ratio"]))
        res = exp_lr_decoupled(eta, lam_eff, T, gamma)
        alpha, sched, mom_b, buf0 = res["a"], res["schedule"], res["momentum"], None
        how = f"decoupled, lam_eff={lam_eff:.4g}, theory.identities.exp_lr_decoupled, momentum(B)={mom_b:.6g}"
    if o.get("zero"):
        buf0, how = None, "spec wording: zero buffers in both runs (no equivalence predicted)"
    hp_b = {**hp_a, "weight_decay": 0.0, **momentum_hyper(spec, mom_b)}
    opt_a = new_optimizer(rule, toys[0], hp_a)
    opt_b = new_optimizer(rule, toys[1], hp_b,
                          None if buf0 is None else lambda opt, w: prime_state(opt, w, {buffer_key: buf0}))
    angle = np.zeros((sz["replicas"], T + 1))
    ratio = np.zeros((sz["replicas"], T + 1))
    ratio[:, 0] = 1.0
    for t in range(T):
        opt_b.param_groups[0]["lr"] = float(sched[t])
        for toy, opt in zip(toys, (opt_a, opt_b)):
            toy.fill_grad()
            opt.step()
        wa, wb = replica_rows(toys[0].w, 1), replica_rows(toys[1].w, 1)
        angle[:, t + 1] = angle_between(wb, wa).cpu().numpy()
        ratio[:, t + 1] = (wb.norm(dim=-1) / wa.norm(dim=-1)).cpu().numpy()
    pred_ratio = alpha ** (-np.arange(T + 1.0))[None, :] * np.ones_like(ratio)
    resid = np.maximum(angle, np.abs(ratio / pred_ratio - 1.0))
    s = setting_text(toy=kind, lr=eta, weight_decay=lam, gamma=gamma, steps=T)
    note = f"{how}; alpha={alpha:.8g}; max angle {angle.max():.3g} rad, max |ratio/alpha^-t - 1| " \
           f"{np.abs(ratio / pred_ratio - 1).max():.3g}"
    if o.get("zero"):
        row = make_row(NAME, claim, rule, s + " buffers=zero", None, float(angle[:, -1].max()),
                       float("nan"), note=note + "; measured = max final angle (rad)")
    else:
        row = make_row(NAME, claim, rule, s, 0.0, float(resid.max()), TOL_TRAJ, "absolute",
                       status="derived" if spec.decay == "decoupled" else None, note=note)
    curve = _curve(claim, rule, kind, s + (" buffers=zero" if o.get("zero") else ""), pred_ratio,
                   ratio, resid, "norm_ratio", "zero buffers" if o.get("zero") else "")
    return [row], curve


# --- figure ---------------------------------------------------------------------------------------
PANELS = (("identity.gd", "r_t²/r_0²"), ("identity.heavy_ball", "r_t²/r_0²"),
          ("identity.projected", "r_t²/r_0²"), ("identity.exp_lr", "‖x_t‖/‖w_t‖"),
          ("identity.exp_lr_momentum", "‖x_t‖/‖w_t‖"))


def plot(results: pd.DataFrame, cfg: VerifyConfig):
    """A row per identity: its quantity, predicted (line) and measured (markers, median over
    replicas, band 5–95%), and the residual (max over replicas) against the tolerance; the
    orthogonality residuals last."""
    path = cfg.family_dir(NAME) / "curves.csv"
    curves = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["claim"])
    fig, axes = figures.grid(len(PANELS) + 1, 2, width=3.4, height=2.5)
    axes = axes.T  # axes[0, j]: the quantity of claim j, axes[1, j]: its residual
    curves = curves.assign(variant=curves.get("variant", pd.Series("", index=curves.index)))
    curves["variant"] = curves["variant"].astype(object).where(curves["variant"].notna(), "")
    keys = ("rule", "toy", "variant")
    for j, (claim, ylab) in enumerate(PANELS):
        c = curves[curves["claim"] == claim]
        if claim == "identity.projected":  # the catalogue's no-decay form on top, every run below
            c = c[c["setting"].str.contains(r"weight_decay=0(?:\s|$)")]
        figures.predicted_vs_measured(axes[0, j], c, ylabel=f"{ylab}", keys=keys, legend=False)
        axes[0, j].set_title(claim)
        figures.residuals(axes[1, j], curves[curves["claim"] == claim], TOL_TRAJ, keys=keys,
                          ylabel="max residual (relative)", outside=True)
        axes[1, j].set_title("residual, max over replicas")
    o = results[results["claim"] == "identity.orthogonality"] if not results.empty else results
    ax = axes[1, -1]
    if o is not None and not o.empty:
        from sandbox.plotting import colors

        o = o.assign(toy=o["setting"].str.extract(r"toy=(\S+)")[0],
                     check=np.where(o["setting"].str.contains("<w,g>"), "<w,g>=0", "∇f(cw)=∇f(w)/c"),
                     residual=np.maximum(o["measured"].astype(float), figures.TINY))
        toys = list(dict.fromkeys(o["toy"]))
        pal = colors(o["check"])
        for i, (check, part) in enumerate(o.groupby("check", sort=False)):
            x = np.array([toys.index(t) for t in part["toy"]]) + (i - 0.5) * 0.25
            ax.plot(x, part["residual"], "o", color=pal[check], label=check, zorder=2)
        ax.set_yscale("log")
        ax.set_xticks(range(len(toys)), toys, rotation=90)
        ax.axhline(TOL_EVAL, ls="--", color="k", lw=1, zorder=3, label="tolerance")
        ax.set_ylabel("residual (relative)")
        ax.set_xlabel("toy")
        ax.set_title("identity.orthogonality")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.set_visible(False)
    axes[0, -1].set_visible(False)
    return [figures.save(fig, cfg.family_dir(NAME) / "identities.png")]

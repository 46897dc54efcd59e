r"""Theory §6: invariances of the update rules, exact (to float64 round-off) or asymptotic.

Claims (predictions from ``theory.invariance``; rules selected by their registry traits):

- ``invariance.adam_loss_scale`` — multiplying the loss by c multiplies every update by c^k
  (k = the rule's homogeneity; ``theory.loss_scale_update_factor``): Adam-like rules (k = 0) are
  invariant, SGD (k = 1) is not. Checked for every rule on random linear losses
  (:class:`~sandbox.toys.GradientStream`, gradients independent of w, so only the rule's
  homogeneity — state included — is tested), c ∈ {10, 0.01}, in the exact limit (eps = 0) and,
  for root-free rules, with their v_0 = 1/B start transformed too (v_0 → c² v_0). Root-free with
  its default v_0 is REPORTED (the law then holds only once β2^t has forgotten the start).
- ``invariance.adam_loss_scale.trajectory`` — k = 0 rules: the whole trajectory on a real
  BatchNorm layer (:class:`~sandbox.toys.NormalizedLinearToy`) is unchanged by c ∈ {1e3, 1e-3}.
- ``invariance.rootfree_reparam`` — k = −1 rules, damping 0: on F(φ) = f(D ⊙ φ) the trajectories
  map exactly, θ_t = D ⊙ φ_t, when v_0 → D² v_0 (``theory.rootfree_reparam_map``); with the
  default v_0 = 1/B the map holds asymptotically (mismatch β2^t(1 − D²)/B,
  ``theory.rootfree_init_mismatch``): checked at the end of a run long enough for β2^t to
  vanish, on the noisy quadratic.
- ``invariance.rootfree_reparam.update_factor`` — every rule: the θ-space update under θ = D ⊙ φ
  is D^{k+1} times the original (per coordinate; elementwise rules): invariant iff k = −1; Adam's
  is multiplied by D, SGD's by D². Adai's inertia uses a global mean of v, so it is not
  elementwise: REPORTED (status open).
- ``invariance.rootfree_newton`` — k = −1 rules on the noisy quadratic with noise covariance
  H/B, started at the minimum: B·v → diag(H)·(1 + excess) (``theory.noisy_quadratic_newton_step``),
  i.e. root-free's step tends to a diagonal Newton step. Tolerance 5% (catalogue).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

import sandbox
import theory
from sandbox.toys import GradientStream, NoisyQuadratic, NormalizedLinearToy, Reparametrised
from sandbox.verify import figures
from sandbox.verify.applicability import (claim_hyperparameters, exact_limit, momentum_of,
                                          rules_where, theory_rules, theory_traits)
from sandbox.verify.base import VerifyConfig
from sandbox.verify.intervals import t_interval
from sandbox.verify.tracking import create, prime_state
from sandbox.verify.rows import (TidyLog, claim_selected, make_row, progress, rows_frame,
                                 setting_text)

TITLE = "Invariances: loss scale, diagonal reparametrisation, root-free ≈ Newton (theory §6)"
NAME = "invariances"
# measured CPU seconds (2 shared cores, one torch thread): sizes the progress bar (sandbox.verify.runner.family_cost)
COST = {"quick": 5, "full": 17}
CLAIMS = ("invariance.adam_loss_scale", "invariance.adam_loss_scale.trajectory",
          "invariance.rootfree_reparam", "invariance.rootfree_reparam.update_factor",
          "invariance.rootfree_newton")
TOL_TRAJ, TOL_NEWTON = 1e-10, 0.05
LOSS_SCALES = (10.0, 0.1)
TRAJ_SCALES = (1e3, 1e-3)
# Stages whose state starts non-zero (v_0 = 1/B): the state key to transform with the gradient
# scale s (v_0 → s² v_0). Every other stage starts from zeros, which any scale maps to itself.
NONZERO_START = {"scale_by_rootfree_adam": "exp_avg_sq", "precondition_rootfree": "exp_avg_sq"}
LR_BY_DEGREE = {1: 0.05, 0: 0.01, -1: 1e-3}
# β2 (or 1 − lr_cov) of the asymptotic checks: short memories, so that β2^T vanishes within T.
FAST_FORGET = {"betas": (0.9, 0.98), "lr_cov": 0.02}
STREAM_FORGET = {"betas": (0.9, 0.9), "lr_cov": 0.1}
TOL_RULE_ASYMPTOTIC, FORGOTTEN = 1e-6, 1e-11


def sizes(cfg: VerifyConfig) -> dict:
    if cfg.quick:
        return {"R": 8, "T": 100, "T_long": 800, "R_newton": 64, "T_newton": 600}
    return {"R": 32, "T": 500, "T_long": 3000, "R_newton": 256, "T_newton": 3000}


def lr_for(name: str) -> float:
    return LR_BY_DEGREE.get(int(sandbox.info(name).homogeneity), 0.01)


def diag_variants(d: int, seed: int, lo=0.2, hi=5.0) -> list[torch.Tensor]:
    """Two random diagonals D, log-uniform in [lo, hi] per coordinate."""
    g = torch.Generator().manual_seed(seed)
    return [torch.exp(torch.empty(d, dtype=torch.float64).uniform_(np.log(lo), np.log(hi),
                                                                   generator=g)) for _ in range(2)]


def prime_start(opt, stack: Reparametrised, spec, hp, batch_size: int) -> list[str]:
    """Transform every non-zero initial state with its variant's gradient scale c·D."""
    scale = (stack.loss_scale * stack.diag).expand_as(stack.w)
    keys = [NONZERO_START[s.name] for s in spec.stages(hp) if s.name in NONZERO_START]
    prime_state(opt, stack.w, {key: scale ** 2 / batch_size for key in keys}, hp)
    return keys


def _run_stack(stack: Reparametrised, rule: str, hp: dict, steps: int, prime: bool, B: int):
    """Run one optimizer over all variants; return θ-space positions (T+1, K, R, d) and the
    θ-space updates (T, K, R, d) as float64 tensors on the CPU."""
    spec = sandbox.info(rule)
    opt = create(rule, stack.param_groups(), **hp)
    if prime:
        prime_start(opt, stack, spec, {**spec.defaults, **hp}, B)
    thetas = [stack.theta().reshape(stack.K, stack.w.shape[1], -1).cpu().clone()]
    for _ in range(steps):
        stack.fill_grad()
        opt.step()
        thetas.append(stack.theta().reshape(stack.K, stack.w.shape[1], -1).cpu().clone())
    th = torch.stack(thetas)
    return th, th[1:] - th[:-1], opt


def _jobs(cfg):
    every = theory_rules()
    k0 = rules_where(lambda s: s.homogeneity == 0)
    rf = rules_where(lambda s: s.homogeneity == -1)
    contrast = {}
    for n in every:  # one rule of each other degree, to show what non-invariance looks like
        k = sandbox.info(n).homogeneity
        if k != 0 and k not in contrast:
            contrast[k] = n
    jobs = [("invariance.adam_loss_scale", r, {}) for r in every]
    jobs += [("invariance.adam_loss_scale", r, {"default_v0": True}) for r in rf]
    jobs += [("invariance.adam_loss_scale.trajectory", r, {}) for r in k0]
    jobs += [("invariance.adam_loss_scale.trajectory", r, {"contrast": True})
             for r in contrast.values()]
    jobs += [("invariance.rootfree_reparam.update_factor", r, {}) for r in every]
    jobs += [("invariance.rootfree_reparam", r, {"v0": v}) for r in rf for v in ("mapped", "default")]
    jobs += [("invariance.rootfree_reparam.update_factor", r, {"default_v0": True}) for r in rf]
    jobs += [("invariance.rootfree_newton", r, {}) for r in rf]
    return [j for j in jobs if claim_selected(cfg, j[0])]


def plan(cfg):
    return [(c, r) for c, r, _ in _jobs(cfg)]


def run(cfg: VerifyConfig) -> pd.DataFrame:
    out = cfg.family_dir(NAME)
    curves = TidyLog(out / "curves.csv")
    rows = []
    fns = {"invariance.adam_loss_scale": _factor, "invariance.rootfree_reparam.update_factor": _factor,
           "invariance.adam_loss_scale.trajectory": _trajectory,
           "invariance.rootfree_reparam": _reparam, "invariance.rootfree_newton": _newton}
    for i, (claim, rule, o) in enumerate(progress(cfg, _jobs(cfg), desc=NAME)):
        new_rows, curve = fns[claim](cfg, claim, rule, dict(o, seed=cfg.seed + 1000 * i))
        rows += new_rows
        curves.append(curve)
    return rows_frame(rows)


def _curve(claim, rule, setting, t, pred, meas, q05=None, q95=None, x_name="step", variant=""):
    return pd.DataFrame({"claim": claim, "rule": rule, "setting": setting, "variant": variant,
                         "x": x_name, "step": t, "predicted": pred, "measured": meas,
                         "measured_q05": meas if q05 is None else q05,
                         "measured_q95": meas if q95 is None else q95})


# --- update factors on a gradient stream ---------------------------------------------------------
def second_moment_decay(spec, hp) -> float:
    """β2 of the rule's second moment (1 − lr_cov for root-free RMSProp)."""
    full = {**spec.defaults, **hp}
    if "lr_cov" in full:
        return 1.0 - float(full["lr_cov"])
    return float(full["betas"][1])


def forgetting_horizon(spec, hp, scales) -> int:
    """Steps after which the unmapped start v_0 = 1/B no longer shows: the theory's mismatch
    β2^t|1 − s²|/B relative to s² v ≈ s²/B (unit gradients) must fall below FORGOTTEN; a heavy
    ball that accumulates preconditioned directions keeps the early ones for μ^t as well."""
    worst = float(np.max(np.abs(1.0 - scales ** 2) / scales ** 2))
    memory = second_moment_decay(spec, hp)
    if spec.momentum_kind == "heavy_ball":
        memory = max(memory, momentum_of(spec, hp))
    return int(np.ceil(np.log(FORGOTTEN / worst) / np.log(memory)))


def _stream_updates(stack: Reparametrised, rule: str, hp: dict, steps: int, prime: bool):
    """Exact updates on a gradient stream: w is reset to 0 before every step (the gradient does
    not depend on w; with no decay and vectors, which the projection never acts on, neither does
    the update), so after the step w IS the update. Returns θ-space updates (T, K, R, d) and the
    identity variant's mean v per step (T,) where the rule keeps ``exp_avg_sq``."""
    spec = sandbox.info(rule)
    opt = create(rule, stack.param_groups(), **hp)
    if prime:
        prime_start(opt, stack, spec, {**spec.defaults, **hp}, 1)
    ups, v = [], []
    for _ in range(steps):
        stack.fill_grad()
        stack.w.zero_()
        opt.step()
        ups.append(stack.theta().reshape(stack.K, stack.w.shape[1], -1).cpu().clone())
        st = opt.state[stack.w].get("exp_avg_sq")
        v.append(float(st[0].mean()) if st is not None else np.nan)
    return torch.stack(ups), np.asarray(v)


def _factor(cfg, claim, rule, o):
    """Update factors c^k (loss × c) or D^(k+1) (θ = D φ, θ-space, per coordinate)."""
    spec = sandbox.info(rule)
    sz = sizes(cfg)
    k, d, default_v0 = float(spec.homogeneity), 8, bool(o.get("default_v0"))
    base = GradientStream((d,), sz["R"], seed=o["seed"], device=cfg.device)
    if claim == "invariance.adam_loss_scale":
        stack = Reparametrised(base, loss_scales=(1.0,) + LOSS_SCALES)
        scales = np.asarray(LOSS_SCALES)[:, None] * np.ones((1, d))
        factor = theory.loss_scale_update_factor(scales, k)[:, None, :]  # (K-1, 1, d)
        what = f"c in {LOSS_SCALES}"
    else:
        diags = diag_variants(d, o["seed"])
        stack = Reparametrised(base, diags=[torch.ones(d)] + diags)
        scales = np.stack([D.numpy() for D in diags])
        # θ = D φ: φ-gradients are D ⊙ g, an elementwise "loss scale" D per coordinate, so the
        # φ-update is D^k times (theory.loss_scale_update_factor) and the θ-update D^(k+1) times.
        factor = (theory.loss_scale_update_factor(scales, k) * scales)[:, None, :]
        what = "D log-uniform in [0.2, 5]"
    extra = STREAM_FORGET if default_v0 else {}
    hp = claim_hyperparameters(spec, lr_for(rule), 1, **exact_limit(spec), weight_decay=0.0, **extra)
    T = forgetting_horizon(spec, hp, scales) if default_v0 else sz["T"]
    upd, v = _stream_updates(stack, rule, hp, T, not default_v0)
    # residual per step, variant and replica: ||u_s - F ⊙ u_1|| / ||F ⊙ u_1|| (a vector norm:
    # elementwise ratios are ill-conditioned where an update component is near 0)
    expect = torch.as_tensor(factor, dtype=upd.dtype)[None] * upd[:, :1]
    dev = ((upd[:, 1:] - expect).norm(dim=-1) / expect.norm(dim=-1)).numpy()  # (T, K-1, R)
    resid_t = dev.reshape(dev.shape[0], -1).max(1)
    t = np.arange(1, T + 1)
    setting = setting_text(lr=hp["lr"], T=T, R=sz["R"], d=d) + f" {what}"
    status, pred_t = None, np.zeros(T)
    note = f"k={k:g}; predicted factor {'c^k' if 'loss' in claim else 'D^(k+1) per coordinate'}" \
           f"; max over steps and replicas of ||u_scaled - factor * u|| / ||factor * u||"
    if default_v0:
        beta2 = second_moment_decay(spec, hp)
        # first-order theory: the update is off by |v mismatch| / (s² v_t), v_0 = 1/B not mapped
        pred_t = np.array([np.abs(theory.rootfree_init_mismatch(scales, beta2, ti, 1)).max()
                           / (scales ** 2 * v[ti - 1]).min() for ti in t])
        setting += f" v0=1/B beta2={beta2:.4g}"
        note += f"; default v0: measured at the final step T, the theory's forgetting horizon " \
                f"(forgetting_horizon); first-order deviation |beta2^T (1 - s^2)/B|/(s^2 v_T) = " \
                f"{pred_t[-1]:.2g}"
        row = make_row(NAME, claim, rule, setting, 0.0, float(resid_t[-1]), TOL_RULE_ASYMPTOTIC,
                       "absolute", note=note)
    else:
        if spec.homogeneity == -1:
            setting += " v0->s^2 v0"
        if claim.endswith("update_factor") and spec.momentum_kind == "adaptive":
            status, note = "open", note + "; not elementwise (global mean of v): reported"
        row = make_row(NAME, claim, rule, setting, 0.0, float(dev.max()), TOL_TRAJ, "absolute",
                       status=status, note=note)
    curve = _curve(claim, rule, setting, t, pred_t, resid_t,
                   variant="default v0" if default_v0 else "")
    return [row], curve


# --- trajectories under loss scaling -------------------------------------------------------------
def _trajectory(cfg, claim, rule, o):
    spec = sandbox.info(rule)
    sz = sizes(cfg)
    base = NormalizedLinearToy(12, 6, sz["R"], batch=16, n_data=256, norm="batch", eps=0.0,
                               seed=o["seed"], device=cfg.device)
    stack = Reparametrised(base, loss_scales=(1.0,) + TRAJ_SCALES)
    hp = claim_hyperparameters(spec, lr_for(rule), base.batch, **exact_limit(spec))
    th, _, _ = _run_stack(stack, rule, hp, sz["T"], True, base.batch)
    dev = ((th[:, 1:] - th[:, :1]).norm(dim=-1) / th[:, :1].norm(dim=-1)).numpy()  # (T+1, K-1, R)
    resid_t = dev.reshape(len(dev), -1).max(1)
    setting = setting_text(toy="bn-linear", lr=hp["lr"], T=sz["T"], R=sz["R"]) + f" c in {TRAJ_SCALES}"
    t = np.arange(len(resid_t))
    curve = _curve(claim, rule, setting, t, np.zeros(len(t)), resid_t,
                   variant=f"k={spec.homogeneity:g}" + (" (contrast)" if o.get("contrast") else ""))
    if o.get("contrast"):
        return [], curve  # a rule of another degree: plotted, not a claim
    row = make_row(NAME, claim, rule, setting, 0.0, float(resid_t.max()), TOL_TRAJ, "absolute",
                   note="max over steps and replicas of ||theta_c - theta_1||/||theta_1||")
    return [row], curve


# --- diagonal reparametrisation of root-free ----------------------------------------------------
def _reparam(cfg, claim, rule, o):
    spec = sandbox.info(rule)
    sz = sizes(cfg)
    B, d = 4, 8
    mapped = o["v0"] == "mapped"
    base = NoisyQuadratic(d, sz["R"], batch_size=B, condition=100.0, theta0=1.0, seed=o["seed"],
                          device=cfg.device)
    diags = diag_variants(d, o["seed"])
    stack = Reparametrised(base, diags=[torch.ones(d)] + diags)
    extra = {} if mapped else FAST_FORGET
    lr = lr_for(rule) if mapped else 0.05
    hp = claim_hyperparameters(spec, lr, B, **exact_limit(spec), **extra)
    T = sz["T"] if mapped else sz["T_long"]
    th, _, opt = _run_stack(stack, rule, hp, T, mapped, B)
    dev = ((th[:, 1:] - th[:, :1]).norm(dim=-1) / th[:, :1].norm(dim=-1)).numpy()
    resid_t = dev.reshape(len(dev), -1).max(1)
    t = np.arange(len(resid_t))
    full = {**spec.defaults, **hp}
    beta2 = full["betas"][1] if "betas" in full and spec.momentum_kind != "heavy_ball" \
        else 1.0 - full.get("lr_cov", 0.0)
    setting = setting_text(toy="noisy-quadratic", lr=lr, T=T, R=sz["R"], B=B, beta2=beta2) + \
        (" v0->D^2 v0" if mapped else " v0=1/B")
    if mapped:
        row = make_row(NAME, claim, rule, setting, 0.0, float(resid_t.max()), TOL_TRAJ, "absolute",
                       note="max over steps/replicas of ||theta_t - D phi_t||/||theta_t||")
        pred = np.zeros(len(t))
    else:
        v = opt.state[stack.w]["exp_avg_sq"][0].cpu().numpy()  # θ-run v_T, (R, d)
        mism = np.abs(np.stack([theory.rootfree_init_mismatch(D.numpy(), beta2, T, B) for D in diags]))
        rel = (mism[:, None, :] / (np.stack([D.numpy() ** 2 for D in diags])[:, None, :] * v[None])).max()
        d2v = np.stack([D.numpy() ** 2 for D in diags])[:, None, :] * v[None]
        pred = np.array([(np.abs(np.stack([theory.rootfree_init_mismatch(D.numpy(), beta2, s, B)
                                           for D in diags]))[:, None, :] / d2v).max() for s in t])
        row = make_row(NAME, claim, rule, setting, None, float(resid_t[-1]), float("nan"),
                       note=f"trajectories with v0=1/B in both runs: final ||theta_T - D phi_T||/"
                       f"||theta_T|| (max over replicas); the rule-level map is checked on the "
                       f"gradient stream (update_factor, v0=1/B). Theory: v mismatch relative to "
                       f"D^2 v_T is {rel:.2g} at T; the trajectories keep the deviation made while "
                       f"it was large unless the dynamics contract it")
    curve = _curve(claim, rule, setting, t, pred, resid_t, variant="mapped v0" if mapped else "default v0")
    return [row], curve


# --- root-free ≈ diagonal Newton ------------------------------------------------------------------
def _newton(cfg, claim, rule, o):
    spec = sandbox.info(rule)
    sz = sizes(cfg)
    B, d, T = 4, 8, sz["T_newton"]
    toy = NoisyQuadratic(d, sz["R_newton"], batch_size=B, condition=100.0, theta0=0.0,
                         seed=o["seed"], device=cfg.device)
    hp = claim_hyperparameters(spec, spec.defaults["lr"], B, **FAST_FORGET)
    opt = create(rule, toy.param_groups(), **hp)
    acc, n, trace = torch.zeros(sz["R_newton"], d, dtype=torch.float64), 0, []
    H = toy.curvatures.cpu()
    for t in range(T):
        toy.fill_grad()
        opt.step()
        bv = B * opt.state[toy.w]["exp_avg_sq"].cpu()  # (R, d)
        trace.append((bv / H).mean(0).numpy())
        if t >= T // 2:
            acc += bv.reshape(acc.shape)
            n += 1
    per_replica = (acc / n / H).numpy()  # (R, d): the replicas are independent
    measured = per_replica.mean(0)
    se = per_replica.std(0, ddof=1) / np.sqrt(per_replica.shape[0])
    full = {**spec.defaults, **hp}
    pred = theory.noisy_quadratic_newton_step(H.numpy(), B, full["lr"], theory_traits(rule, hp),
                                              damping=full["eps"])["ratio"]
    err = np.abs(measured / pred - 1.0)
    i = int(np.argmax(err))
    setting = setting_text(toy="noisy-quadratic", lr=full["lr"], T=T, R=sz["R_newton"], B=B, d=d,
                           H="1..100") + " " + setting_text(**{k: full[k] for k in FAST_FORGET if k in full})
    row = make_row(NAME, claim, rule, setting, float(pred[i]), float(measured[i]), TOL_NEWTON,
                   interval=t_interval(measured[i], se[i], per_replica.shape[0] - 1),
                   note=f"B v / H averaged over replicas and steps {T // 2}..{T - 1} (interval over "
                        f"the replicas); worst of {d} "
                        f"coordinates (H={H[i]:.3g}); all: {np.round(measured, 3).tolist()}")
    trace = np.asarray(trace)  # (T, d)
    curve = pd.concat([_curve(claim, rule, setting, np.arange(1, T + 1), np.full(T, pred[j]),
                              trace[:, j], variant=f"H={H[j]:.3g}") for j in (0, d // 2, d - 1)])
    return [row], curve


# --- figure ---------------------------------------------------------------------------------------
def plot(results: pd.DataFrame, cfg: VerifyConfig):
    path = cfg.family_dir(NAME) / "curves.csv"
    curves = pd.read_csv(path) if path.exists() else pd.DataFrame(
        columns=["claim", "variant", "measured"])
    curves["variant"] = curves["variant"].astype(object).where(curves["variant"].notna(), "")
    curves = curves.assign(residual=curves["measured"])
    fig, axes = figures.grid(3, 2, width=5.4, height=3.0)
    axes[2, 1].set_visible(False)
    axes = axes.reshape(1, -1)[:, [0, 1, 2, 3, 4]]
    keys = ("rule", "variant")
    factor = curves["claim"].isin(["invariance.adam_loss_scale",
                                   "invariance.rootfree_reparam.update_factor"])
    c = curves[factor & (curves["variant"] == "")]
    c = c.assign(variant=np.where(c["claim"].str.contains("reparam"), "θ = Dφ", "loss × c"))
    figures.residuals(axes[0, 0], c, TOL_TRAJ, keys=keys, outside=True,
                      ylabel="max ‖u_s − F⊙u‖/‖F⊙u‖ (relative)")
    axes[0, 0].set_title("update factors c^k, D^(k+1)")
    c = curves[factor & (curves["variant"] == "default v0")]
    c = c.assign(variant=np.where(c["claim"].str.contains("reparam"), "θ = Dφ", "loss × c"))
    c = c.assign(predicted=np.maximum(c["predicted"], figures.TINY),
                 measured=np.maximum(c["measured"], figures.TINY))
    figures.predicted_vs_measured(axes[0, 1], c, keys=keys, logx=False, outside=True,
                                  ylabel="factor deviation (dimensionless)")
    axes[0, 1].set_title("root-free, v0 = 1/B: the start forgotten")
    c = curves[curves["claim"] == "invariance.adam_loss_scale.trajectory"]
    figures.residuals(axes[0, 2], c, TOL_TRAJ, keys=keys, outside=True,
                      ylabel="max ‖θ_c − θ_1‖/‖θ_1‖ (relative)")
    axes[0, 2].set_title("loss × c, BatchNorm layer: trajectories")
    c = curves[curves["claim"] == "invariance.rootfree_reparam"]
    figures.residuals(axes[0, 3], c, TOL_TRAJ, keys=keys, outside=True,
                      ylabel="max ‖θ_t − Dφ_t‖/‖θ_t‖ (relative)")
    axes[0, 3].set_title("root-free, θ = D φ: trajectories")
    c = curves[curves["claim"] == "invariance.rootfree_newton"]
    figures.predicted_vs_measured(axes[0, 4], c, keys=keys, logy=False, outside=True,
                                  ylabel="B·v / H (mean over replicas)")
    axes[0, 4].set_title("root-free B·v → diag H (Newton)")
    return [figures.save(fig, cfg.family_dir(NAME) / "invariances.png")]

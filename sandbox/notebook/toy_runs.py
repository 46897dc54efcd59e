r"""The noise-driven toy through registered rules, with theory's prediction next to each run.

Measurement: :func:`sandbox.experiments.effective_step.run_noise_toy` (``replicas`` weights
w ∈ R^d in one tensor, gradient g = Π⊥(ξ)/‖w‖, ξ ~ N(0, σ²I); rms over replicas of ‖w_t‖ and of
the angular step Δ_t = angle(w_t, w_{t+1})). Prediction: the ``theory`` package (docs/theory.md
§2–3) composed from the rule's traits, which are read off its stage chain
(:func:`sandbox.optim.traits.rule_traits`):

* k > −1 (SGD-like k = 1, Adam-like k = 0): with y = r^{2(k+1)} and the scale-free update size A
  (‖u‖ = A r^{−k}; noise toy, :func:`theory.toy_update_size`),

  .. math:: y_t = y^* + (y_0 - y^*)\,e^{-2(k+1)\eta\lambda_\text{eff} t},\quad
            y^* = \frac{M\eta A^2}{2\lambda_\text{eff}},\qquad
            \Delta_t = \arctan\!\big(\eta A / r_t^{k+1}\big)

  (:func:`theory.norm_curve`, :func:`theory.angular_step_curve`); without decay
  y_t = y_0 + (k+1)Mη²A²t and Δ_t → 1/sqrt((k+1)Mt), independent of η (Arora, Li & Lyu,
  ICLR 2019; M = (1+β)/(1−β) unprojected, 1 projected: Heo et al., ICLR 2021); with decay
  Δ_t → Δ* = sqrt(2ηλ_eff/M) (van Laarhoven 2017; Wan et al. 2021; Kosson et al., ICML 2024).
* k = −1 (root-free): r grows geometrically, r_t² = r_0² ρ^t, at a constant Δ; ρ and Δ with the
  second-moment lag (:func:`sandbox.experiments.rootfree.predict_geometric`), valid until the
  damping takes over near r_c (:func:`sandbox.experiments.rootfree.crossover_radius`); the
  prediction is left out (NaN) beyond r_c.
* Adam with coupled L2: no fixed Δ* (Kosson et al.); only the conditional equilibrium for the
  toy's gradient scale is given (:func:`theory.equilibrium_angular_step`).
* Adai: its per-element inertia is replaced by the isotropic β1 = 1 − β0 — a heuristic; the
  claim is open (theory §3).

Runs are cached on disk under a key of everything that defines them
(:func:`sandbox.experiments.run_cache.cached`): a rerun of a notebook resumes instead of redoing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

import sandbox
import theory
from sandbox.experiments.effective_step import run_noise_toy
from sandbox.experiments.rootfree import crossover_radius, predict_geometric
from sandbox.experiments.run_cache import cached
from sandbox.optim.traits import rule_traits
from sandbox.measure import log_schedule

from .style import label_colors, plain_log_ticks, use_style

LATE_FRACTION = 0.3  # the verdict window: steps >= LATE_FRACTION * last step
CACHE_VERSION = 4  # bump when what a cached run measures changes


@dataclass
class Prediction:
    """Predicted rms ‖w_t‖ and Δ_t at ``steps`` (NaN where theory has none) and what they mean."""

    steps: np.ndarray
    norm: np.ndarray
    delta: np.ndarray
    kind: str
    delta_star: float = np.nan  # equilibrium angular step (horizontal line), if any
    asymptote: np.ndarray | None = None  # 1/sqrt((k+1) M t) without decay (k > −1)
    crossover_radius: float = np.nan  # root-free: where damping takes over
    notes: list = field(default_factory=list)


def predict_effective_step(rule: str, hp: dict, steps, d: int, r0: float = 1.0,
                           sigma: float = 1.0) -> Prediction:
    """Theory's ‖w_t‖ and Δ_t (rms) for ``rule`` at hyperparameters ``hp`` on the noise toy.

    ``steps``: 0-based indices t of the steps w_t → w_{t+1} (Δ_t and ‖w_t‖ as recorded by
    :func:`run_noise_toy`). See the module docstring for the formulas and their regimes.
    """
    t = np.asarray(steps, dtype=float)
    nan = np.full(t.shape, np.nan)
    spec = sandbox.info(rule)
    full = {**spec.defaults, **hp}
    traits = rule_traits(rule, **hp)
    k = float(traits.homogeneity)
    eta, lam = float(full["lr"]), float(full.get("weight_decay", 0.0))
    wd_ratio = float(full.get("wd_ratio", 0.1))
    notes = []
    if traits.adaptive_inertia:
        notes.append("Adai: isotropic inertia β1 = 1 − β0 assumed (heuristic; the claim is open)")
    if k <= -1:
        geo = predict_geometric(rule, d, sigma, **hp)
        damping = float(full["eps"])
        rc = crossover_radius(d, damping, int(full["batch_size"]), sigma) if damping > 0 else np.inf
        norm = r0 * geo["rho"] ** (t / 2.0)
        delta = np.full(t.shape, geo["delta"])
        beyond = norm > rc
        norm, delta = np.where(beyond, np.nan, norm), np.where(beyond, np.nan, delta)
        notes.append(f"root-free: r² × ρ = {geo['rho']:.6g} per step at constant Δ = "
                     f"{geo['delta']:.4g} (lag-corrected); damping takes over near r_c = {rc:.3g}")
        return Prediction(t, norm, delta, "geometric growth, constant Δ", crossover_radius=rc,
                          notes=notes)
    gt = np.sqrt(d - 1.0) * sigma  # scale-free gradient norm r‖g‖ of the toy
    lam_eff = float(theory.effective_decay(lam, traits, wd_ratio))
    m = theory.momentum_factor(traits)
    if not np.isfinite(lam_eff):  # Adam + coupled L2: conditional equilibrium only
        star = float(theory.equilibrium_angular_step(eta, lam, traits, wd_ratio, d=d,
                                                     grad_norm_unit=gt))
        notes.append("Adam + L2: no fixed Δ*; the line is the equilibrium for this toy's "
                     "gradient scale (conditional)")
        return Prediction(t, nan, nan, "conditional equilibrium", delta_star=star, notes=notes)
    star = float(np.sqrt(2 * eta * lam_eff / m)) if lam_eff > 0 else np.nan
    a = float(theory.toy_update_size(traits, d, angular_step=0.0 if np.isnan(star) else star))
    a *= sigma ** k  # ‖u‖ ∝ σ^k (the toy's sizes are tabulated at σ = 1)
    norm = np.asarray(theory.norm_curve(t, r0, eta, a, traits, lam_eff), dtype=float)
    delta = np.asarray(theory.angular_step_curve(t, r0, eta, a, traits, lam_eff), dtype=float)
    if lam_eff > 0:
        kind = "relaxation to the equilibrium Δ*"
        asym = None
    else:
        kind = "no decay: Δ_t → 1/sqrt((k+1) M t)"
        if lam > 0:
            notes.append("the projection removes this rule's coupled L2 (it is radial): no decay")
        with np.errstate(divide="ignore"):
            asym = np.asarray(theory.angular_step_asymptote(np.maximum(t, 1.0), traits), float)
    notes.append(f"k = {k:g}, M = {m:.4g}, A = {a:.4g}, λ_eff = {lam_eff:.3g}")
    return Prediction(t, norm, delta, kind, delta_star=star, asymptote=asym, notes=notes)


def record_schedule(steps: int) -> np.ndarray:
    """Steps to record: every step up to 20, then 40 per decade (log-spaced). Sparser than
    :func:`sandbox.measure.log_schedule`'s default, because each record costs a few pandas
    frames (about 1 ms) — more than a toy step."""
    return log_schedule(steps, dense=20, per_decade=40)


def run_effective_step(rule: str, hp: dict, steps: int, replicas: int = 128, d: int = 64, *,
                       seed: int = 0, device: str = "cpu", r0: float = 1.0,
                       sigma: float = 1.0, progress=None) -> pd.DataFrame:
    """Measured (:func:`run_noise_toy`) and predicted ‖w_t‖, Δ_t in one tidy table.

    Columns: ``step, quantity`` ('norm' or 'delta'), ``rms`` (measured: rms over replicas), ``q05,
    q95`` (replica quantiles), ``predicted``, ``rule``, ``kind`` (what the prediction is), ``d``,
    ``replicas``.
    """
    df = run_noise_toy(rule, steps, replicas, d, r0=r0, sigma=sigma, seed=seed, device=device,
                       schedule=record_schedule(steps), progress=progress, **hp)
    df = df[df["quantity"].isin(["norm", "delta"])]
    steps = np.sort(df["step"].unique())
    pred = predict_effective_step(rule, hp, steps, d, r0, sigma)
    theory_rows = pd.DataFrame({"step": np.concatenate([steps, steps]),
                                "quantity": ["norm"] * len(steps) + ["delta"] * len(steps),
                                "predicted": np.concatenate([pred.norm, pred.delta])})
    out = df[["step", "quantity", "rms", "q05", "q95"]].merge(theory_rows, how="left",
                                                               on=["step", "quantity"])
    out["rule"], out["kind"], out["d"], out["replicas"] = rule, pred.kind, d, replicas
    return out


def late_ratios(table: pd.DataFrame, fraction: float = LATE_FRACTION) -> dict:
    """Median of measured/predicted per quantity over the steps >= ``fraction`` × last step
    (NaN where there is no prediction)."""
    late = table[table["step"] >= fraction * table["step"].max()]
    out = {}
    for q in ("norm", "delta"):
        part = late[(late["quantity"] == q) & np.isfinite(late["predicted"])]
        out[q] = float(np.median(part["rms"] / part["predicted"])) if len(part) else np.nan
    return out


def run_configs(configs, steps: int, replicas: int = 128, d: int = 64, *, out=None,
                seed: int = 0, device: str = "cpu", progress=None) -> pd.DataFrame:
    """:func:`run_effective_step` for each config, one table with a ``label`` column.

    ``configs``: dicts with ``rule`` and its ``sandbox.create`` keywords, optionally ``label``
    (default the rule). ``out``: a folder where each run is cached as soon as it is done
    (a rerun resumes). ``progress``: a tqdm-like factory over the configs (or None).
    """
    frames = []
    items = list(configs)
    labels = [c.get("label", c["rule"]) for c in items]
    if len(set(labels)) != len(labels):
        raise ValueError(f"config labels must be unique; got {labels}")
    it = progress(items, desc="runs") if progress else items
    for cfg in it:
        cfg = dict(cfg)
        rule, label = cfg.pop("rule"), cfg.pop("label", None) or None
        label = label or rule
        compute = lambda: run_effective_step(rule, cfg, steps, replicas, d, seed=seed,  # noqa: E731
                                             device=device)
        if out is None:
            table = compute()
        else:
            key = {"v": CACHE_VERSION, "rule": rule, "hp": cfg, "steps": steps,
                   "replicas": replicas, "d": d, "seed": seed, "device": str(device)}
            table = cached(out, key, compute)
        frames.append(table.assign(label=label))
    return pd.concat(frames, ignore_index=True)


def late_table(table: pd.DataFrame, fraction: float = LATE_FRACTION) -> pd.DataFrame:
    """Per label: the late-window medians of measured/predicted (``norm_ratio``,
    ``delta_ratio``), the late rms Δ measured and predicted, and the window."""
    rows = []
    for label, part in table.groupby("label", sort=False):
        r = late_ratios(part, fraction)
        last = part["step"].max()
        late = part[(part["step"] >= fraction * last) & (part["quantity"] == "delta")]
        rows.append({"label": label, "rule": part["rule"].iloc[0], "norm_ratio": r["norm"],
                     "delta_ratio": r["delta"],
                     "delta_measured": float(np.sqrt(np.mean(late["rms"] ** 2))),
                     "delta_predicted": float(np.sqrt(np.mean(late["predicted"] ** 2))),
                     "window": f"[{int(fraction * last)}, {int(last)}]"})
    return pd.DataFrame(rows)


def draw_runs(table: pd.DataFrame, quantity: str = "delta", ax=None, logx: bool = True,
              logy: bool = True, band: bool = True, title: str = ""):
    """Measured rms (points, 5–95% band over replicas) and predicted (line) of one quantity
    against the step, one colour per label (the rule's colour when labels are rules).
    Returns the axes."""
    import matplotlib.pyplot as plt

    from sandbox.plotting import BAND, MEASURED, predicted_kw, style_legend, thin

    use_style()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    part = table[(table["quantity"] == quantity) & (table["step"] >= (1 if logx else 0))]
    labels = list(dict.fromkeys(part["label"]))
    colours = label_colors(part["label"], part["rule"])
    for lab in labels:
        p = part[part["label"] == lab].sort_values("step")
        c = colours[lab]
        if band:
            ax.fill_between(p["step"], p["q05"], p["q95"], color=c, **BAND)
        ax.plot(*thin(p["step"], p["rms"], log=logx), color=c, mfc="none", **MEASURED)
        ax.plot(p["step"], p["predicted"], **predicted_kw(c))
    ax.set(xscale="log" if logx else "linear", yscale="log" if logy else "linear",
           xlabel="step t", title=title,
           ylabel={"delta": "angular step Δ_t (rad)",
                   "norm": "weight norm ‖w_t‖ (units of ‖w_0‖)"}.get(quantity, quantity))
    if quantity == "norm" and logy:
        plain_log_ticks(ax)
    style_legend(ax, [(lab, colours[lab]) for lab in labels], outside=True,
                 entries=(("predicted (line)", {"ls": "-", "lw": 1.6}),
                          ("measured rms (markers)", {**MEASURED, "mfc": "none"})))
    return ax


def _hp(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in ("rule", "label")}


def compensated(table: pd.DataFrame, configs) -> pd.DataFrame:
    """Δ_t · sqrt((k+1) M t) per label for the k > −1 rules (the §2 claim: → 1), with t the
    number of steps taken (step + 1). Columns: label, rule, t, compensated."""
    from sandbox.experiments.effective_step import series

    rows = []
    for cfg in configs:
        tr = rule_traits(cfg["rule"], **_hp(cfg))
        if tr.homogeneity <= -1:
            continue
        t, d = series(table[table["label"] == cfg.get("label", cfg["rule"])], "delta")
        km = (tr.homogeneity + 1) * theory.momentum_factor(tr)
        rows.append(pd.DataFrame({"label": cfg.get("label", cfg["rule"]), "rule": cfg["rule"],
                                  "t": t, "compensated": d * np.sqrt(km * t)}))
    return pd.concat(rows, ignore_index=True)


def asymptote_rows(table: pd.DataFrame, configs, setting: str = "") -> list[dict]:
    """Verdict rows of theory §2 for each run (statistics of ``verify``'s asymptotes family):

    - k > −1: ``asymptote.constant`` — slope of Δ_t⁻² on t over the last 3/4 of the run
      (:func:`fit_inverse_square`, free of the transient offset) vs (k+1)M, 10%;
      ``asymptote.exponent`` — log-log slope of Δ_t over the last decade vs −1/2, absolute 0.1;
      both with their OLS intervals (the verdict rule of :func:`sandbox.verify.base.verdict`);
    - k = −1: ``asymptote.rootfree_delta`` — late rms Δ vs the lag-corrected constant, 10%
      (a point estimate: ``verify``'s asymptotes family gives it a jackknife interval).
    """
    from sandbox.experiments.effective_step import fit_inverse_square, fit_power_law, series

    from sandbox.verify.intervals import slope_interval

    from .verdicts import claim_row

    rows = []
    for cfg in configs:
        hp, label = _hp(cfg), cfg.get("label", cfg["rule"])
        tr = rule_traits(cfg["rule"], **hp)
        part = table[table["label"] == label]
        t, d = series(part, "delta")
        where = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in hp.items()) + (f"; {setting}" if setting else "")
        if tr.homogeneity > -1:
            late = t >= t.max() / 4
            fit = fit_inverse_square(t[late], d[late])
            km = (tr.homogeneity + 1) * theory.momentum_factor(tr)
            rows.append(claim_row("asymptote.constant", label, where, km, fit["slope"], 0.10,
                                  interval=slope_interval(fit["slope"], fit["slope_se"],
                                                          int(late.sum())),
                                  note=f"fitted transient offset t0 = {fit['t0']:.0f} steps; "
                                       f"OLS interval (neighbouring steps correlate: a lower "
                                       f"bound on the uncertainty)"))
            last = t >= t.max() / 10
            pw = fit_power_law(t[last], d[last])
            rows.append(claim_row("asymptote.exponent", label, where, -0.5, pw["exponent"], 0.1,
                                  kind="absolute", interval=(pw["low"], pw["high"]),
                                  note="95% OLS interval of the log-log slope"))
        else:
            pred = predict_effective_step(cfg["rule"], hp, t - 1, int(part["d"].iloc[0]))
            late = (t >= LATE_FRACTION * t.max()) & np.isfinite(pred.delta)
            rows.append(claim_row("asymptote.rootfree_delta", label, where,
                                  float(np.sqrt(np.mean(pred.delta[late] ** 2))),
                                  float(np.sqrt(np.mean(d[late] ** 2))), 0.10,
                                  note=pred.notes[-1]))
    return rows

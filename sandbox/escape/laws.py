r"""Which law do the escape rates follow? Fits of −log Γ against k, B and η, and a decision rule.

**Candidate laws.** The escape exponent ``E = ΔL/T`` (theory §5, :mod:`theory.escape`) is a power
of each control variable; the candidates are

====== ===================== ==================== ==============================
var     law (α = 1)           law (α = 1/2)        law (α = 0)
====== ===================== ==================== ==============================
k       E ∝ 1/k (SGD, Adai)   E ∝ 1/√k (Adam)      E ∝ k⁰ (root-free)
B       E ∝ B                 E ∝ √B (Adam)        E ∝ B⁰
eta     E ∝ 1/η (all rules)   E ∝ 1/√η             E ∝ η⁰
====== ===================== ==================== ==============================

i.e. ``E = b·x_α`` with the regressor ``x_α = k^−α``, ``B^α`` or ``η^−α``.

**Kramers' prefactor.** A rate per optimizer step is ``Γ = ν·e^{−E}`` with the attempt frequency
``ν ∝ η_eff·√(H_a|H_b|)``, where ``η_eff`` is the rule's effective step (mobility) in the
continuous-time limit (:func:`theory.escape.kramers_escape_time`). Under the law with exponent α,
``ν ∝ k^α`` (``η_eff·H_a ∝ T ∝ k^α``), ``ν ∝ B^(1−α)`` (Adam's ``η/√v ∝ √B``; SGD's and
root-free's mobility do not depend on B) and ``ν ∝ η``. So −log Γ is not exactly linear in x_α:
it carries ``−γ·ln(var)`` with ``γ = α`` (k), ``1 − α`` (B), ``1`` (η). Over a factor 4 in k this
log term is ~1.4 nats, enough to blur 1/k against 1/√k in a plain fit, so every law is also
fitted in its *Kramers-corrected* form ``y_α = −log Γ + γ(α)·ln(var) = c + b·x_α``.

**Fits reported** (:func:`fit_laws`): for each law, the plain fit of −log Γ on x_α and the
Kramers-corrected fit, weighted by the number of escapes (``Var(log Γ̂) ≈ 1/n``): slope with a 95%
interval (widened by √(χ²/dof) with Student's t when the scatter exceeds the counting noise),
intercept, weighted R², χ², AIC = χ² + 2p. The α = 0 law is the constant model (p = 1).

**Decision rule** (:func:`decide_laws`). Each candidate law is a complete model — the corrected
``y_α = c + b·x_α`` at its own α, with the fitted exponent ``E = b·x_α ≥ 1`` nat at every point
(the escape must be activated for the Arrhenius form and its prefactor to apply; α = 0 is the
constant model). The data follow the law with the smallest ``AIC = χ² + 2p`` (a likelihood
comparison: the two power laws have p = 2, the constant p = 1). The laws are *separated* when
every other law's χ² exceeds the chosen one's by more than ``3.84·max(1, χ²_min/dof)`` (the 95%
criterion below; ``dchi2[law]`` columns); the laws within that margin are *kept*. The verdict
(:func:`sandbox.verify.base.verdict` on :func:`law_measurement`) is PASS only when the predicted
law is the one kept, FAIL only when it is rejected, INCONCLUSIVE otherwise.

As a measurement beside the decision, the exponent is also profiled continuously over
α ∈ [−1, 2] with the same model and bound: ``α̂ = argmin χ²(α)`` with the 95% profile-likelihood
interval ``χ²(α) − χ²(α̂) ≤ 3.84·max(1, χ²(α̂)/dof)`` (the connected run around α̂). The bound
E ≥ 1 matters here: without it a spurious second minimum appears at large α, where a tiny
exponent plus the attempt frequency's ``k^α`` mimic the data (seen for Adam over k ∈ [1, 4]).
α̂ is a noisier summary than the discrete comparison (for Adam, whose exponent changes only by a
factor 2 over k ∈ [1, 4], its interval is about ±0.13 while the 1/k law is rejected by Δχ² > 1000),
so it is reported, not used for the verdict.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

LAWS = {
    "k": {"1/k": 1.0, "1/sqrt(k)": 0.5, "k^0": 0.0},
    "B": {"B": 1.0, "sqrt(B)": 0.5, "B^0": 0.0},
    "eta": {"1/eta": 1.0, "1/sqrt(eta)": 0.5, "eta^0": 0.0},
}
VARIABLE_COLUMN = {"k": "k", "B": "B", "eta": "lr"}
ALPHA_GRID = np.round(np.arange(-1.0, 2.0 + 1e-9, 0.01), 2)
MIN_EVENTS = 10  # a point with fewer escapes is reported, not fitted
MIN_EXPONENT = 1.0  # nats: the fitted exponent E must be at least this at every point


def regressor(var: str, values, alpha: float) -> np.ndarray:
    """``x_α``: ``k^−α``, ``B^α`` or ``η^−α``."""
    v = np.asarray(values, dtype=float)
    return v ** (alpha if var == "B" else -alpha)


def kramers_offset(var: str, values, alpha: float) -> np.ndarray:
    """``γ(α)·ln(var)``, added to −log Γ to remove the attempt frequency's power of ``var``."""
    gamma = {"k": alpha, "B": 1.0 - alpha, "eta": 1.0}[var]
    return gamma * np.log(np.asarray(values, dtype=float))


def law_name(var: str, alpha: float) -> str:
    for name, a in LAWS[var].items():
        if a == alpha:
            return name
    return f"{var}^{-alpha if var != 'B' else alpha:g}"


def weighted_line(x, y, w, level: float = 0.95) -> dict:
    """Weighted least squares ``y = c + b·x`` (weights ``w = 1/Var y``); a constant model when x
    does not vary. Returns slope, its interval, intercept, weighted R², χ², dof."""
    x, y, w = (np.asarray(a, dtype=float) for a in (x, y, w))
    W = w.sum()
    ym = (w * y).sum() / W
    sst = float((w * (y - ym) ** 2).sum())
    xm = (w * x).sum() / W
    sxx = float((w * (x - xm) ** 2).sum())
    n = x.size
    if sxx <= 1e-12 * max(1.0, float((w * x * x).sum())):
        return {"slope": np.nan, "slope_lo": np.nan, "slope_hi": np.nan, "intercept": ym,
                "r2": 0.0, "chi2": sst, "dof": n - 1, "params": 1}
    b = float((w * (x - xm) * (y - ym)).sum() / sxx)
    c = ym - b * xm
    chi2 = float((w * (y - c - b * x) ** 2).sum())
    dof = n - 2
    se = np.sqrt(1.0 / sxx)
    if dof > 0 and chi2 > dof:  # scatter beyond the counting noise: inflate, Student's t
        half = stats.t.ppf(0.5 + level / 2, dof) * se * np.sqrt(chi2 / dof)
    else:
        half = stats.norm.ppf(0.5 + level / 2) * se
    return {"slope": b, "slope_lo": b - half, "slope_hi": b + half, "intercept": c,
            "r2": 1.0 - chi2 / sst if sst > 0 else np.nan, "chi2": chi2, "dof": dof, "params": 2}


def _points(df: pd.DataFrame, var: str):
    col = VARIABLE_COLUMN[var]
    ok = (df["n_escaped"] >= MIN_EVENTS) & np.isfinite(df["neg_log_rate"])
    d = df[ok].sort_values(col)
    return d[col].to_numpy(float), d["neg_log_rate"].to_numpy(float), d["n_escaped"].to_numpy(float)


# the columns held fixed while one variable varies
OTHERS = {"k": ("B", "lr"), "B": ("k", "lr_factor"), "eta": ("k", "B")}


def _groups(df: pd.DataFrame, var: str):
    """(labels, rows) for every group of the table in which ``var`` takes >= 2 values while the
    rule, the problem and the other two variables are fixed."""
    col = VARIABLE_COLUMN[var]
    keys = [c for c in ("rule", "problem") + OTHERS[var] if c in df.columns]
    for key, d in df.groupby(keys, sort=False):
        if d[col].nunique() < 2:
            continue
        labels = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        labels["at"] = ", ".join(f"{c}={labels.pop(c):.4g}" for c in OTHERS[var] if c in labels)
        yield labels, d


def fit_laws(rates: pd.DataFrame) -> pd.DataFrame:
    """Every candidate law fitted to every sweep found in a rates table.

    ``rates`` has the columns of :func:`sandbox.escape.run_escape_grid`; a *sweep* is a group of
    rows where one variable (k, B or the lr) takes several values and the rule, the problem and
    the other two variables are fixed (``at`` names them). One row per (rule, problem, variable,
    at, law, correction): ``correction`` is 'none' (−log Γ on x_α) or 'kramers' (y_α on x_α).
    """
    rows = []
    for var, (labels, d) in ((v, g) for v in LAWS for g in _groups(rates, v)):
        values, y, n = _points(d, var)
        for law, alpha in LAWS[var].items():
            for corr in ("none", "kramers"):
                if values.size < 2:
                    continue
                yy = y + (kramers_offset(var, values, alpha) if corr == "kramers" else 0.0)
                fit = weighted_line(regressor(var, values, alpha), yy, n)
                rows.append({**labels, "variable": var, "law": law, "alpha": alpha,
                             "correction": corr, "points": values.size, **fit,
                             "aic": fit["chi2"] + 2 * fit["params"]})
    return pd.DataFrame(rows)


def exponent_profile(var: str, values, y, n, alphas=ALPHA_GRID,
                     min_exponent: float = MIN_EXPONENT) -> pd.DataFrame:
    """χ²(α) of the Kramers-corrected model ``y + γ(α) ln var = c + b x_α`` with the exponent
    ``b·x_α ≥ min_exponent`` at every point (b is held at the bound when the free fit is below
    it); α = 0 is the constant model."""
    out = []
    w = np.asarray(n, dtype=float)
    for a in alphas:
        yy = y + kramers_offset(var, values, a)
        if a == 0:
            fit = weighted_line(np.zeros_like(yy), yy, w)
            out.append({"alpha": 0.0, "chi2": fit["chi2"], "slope": 0.0, "intercept": fit["intercept"]})
            continue
        x = regressor(var, values, a)
        fit = weighted_line(x, yy, w)
        b, c, chi2 = fit["slope"], fit["intercept"], fit["chi2"]
        b_min = min_exponent / x.min()
        if not np.isfinite(b) or b < b_min:  # held at the bound: fit the intercept only
            b = b_min
            c = float((w * (yy - b * x)).sum() / w.sum())
            chi2 = float((w * (yy - c - b * x) ** 2).sum())
        out.append({"alpha": float(a), "chi2": chi2, "slope": b, "intercept": c})
    return pd.DataFrame(out)


def fit_exponent(var: str, values, y, n, level: float = 0.95) -> dict:
    """The law the data follow (smallest AIC among the candidates), whether the others are
    rejected, and the continuous exponent α̂ with its profile-likelihood interval (module
    docstring)."""
    values, y, n = (np.asarray(a, dtype=float) for a in (values, y, n))
    if values.size < 3:
        return {"alpha_hat": np.nan, "alpha_lo": np.nan, "alpha_hi": np.nan, "law": "undetermined",
                "separated": False, "laws_kept": "", "law_lo": np.nan, "law_hi": np.nan,
                "chi2_min": np.nan, "dof": values.size - 3, "slope": np.nan,
                "intercept": np.nan}
    prof = exponent_profile(var, values, y, n)
    chi2 = prof["chi2"].to_numpy()
    i = int(np.argmin(chi2))
    chi2_min, dof = float(chi2[i]), values.size - 3
    scale = max(1.0, chi2_min / dof) if dof > 0 else 1.0
    cut = stats.chi2.ppf(level, 1) * scale
    inside = chi2 - chi2_min <= cut
    # the interval is the connected run of accepted α around α̂ (the profile can have a second,
    # separate dip; candidates are judged by their own χ², not by the hull)
    j, m = i, i
    while j > 0 and inside[j - 1]:
        j -= 1
    while m < len(inside) - 1 and inside[m + 1]:
        m += 1
    alphas = prof["alpha"].to_numpy()
    a_hat = float(alphas[i])
    laws = LAWS[var]
    delta = {name: float(chi2[np.argmin(np.abs(alphas - a))] - chi2_min) for name, a in laws.items()}
    aic = {name: delta[name] + (2.0 if a == 0 else 4.0) for name, a in laws.items()}
    law = min(aic, key=aic.get)
    kept = [name for name in laws if delta[name] - delta[law] <= cut]  # the law itself included
    separated = kept == [law]
    return {"alpha_hat": a_hat, "alpha_lo": float(alphas[j]), "alpha_hi": float(alphas[m]),
            "law": law, "separated": separated, "laws_kept": ",".join(kept),
            "law_lo": min(laws[n] for n in kept), "law_hi": max(laws[n] for n in kept),
            "chi2_min": chi2_min, "dof": dof,
            "chi2_scale": scale, "slope": float(prof.loc[i, "slope"]),
            "intercept": float(prof.loc[i, "intercept"]),
            **{f"dchi2[{name}]": d for name, d in delta.items()}}


def law_measurement(decision) -> tuple[float, tuple[float, float]]:
    """A decision as a measurement for :func:`sandbox.verify.base.verdict`: the exponent of the
    law the data follow, and as its interval the range of exponents of every candidate law the
    data do not reject (``laws_kept``). A separated decision has a zero-width interval; one that
    cannot tell the predicted law from another spans both, so its verdict is INCONCLUSIVE."""
    get = decision.get if isinstance(decision, dict) else lambda k, d=None: getattr(decision, k, d)
    law = get("law")
    alpha = LAWS[get("variable")].get(law, float("nan"))  # NaN: fewer than 3 fitted points
    return float(alpha), (float(get("law_lo")), float(get("law_hi")))


TOLERANCE = 0.25  # half the spacing between candidate exponents: "the data follow the prediction"


def decide_laws(rates: pd.DataFrame, predictions: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per sweep (rule, problem, variable, at): the law the data follow, whether every
    other candidate law is rejected (``separated``; ``laws_kept`` lists the laws not rejected),
    the continuous exponent α̂ [95% interval], the χ² differences ``dchi2[law]``, and — when
    ``predictions`` (columns rule, variable, alpha_pred, law_pred, status, citation, slope_pred;
    see :func:`sandbox.escape.arms.predicted_laws`) is given — the predicted law and the verdict
    of :func:`sandbox.verify.base.verdict` (the rule of every table) on
    :func:`law_measurement`: PASS when the data follow the predicted law and reject the others,
    FAIL when they follow another law and reject the predicted one, INCONCLUSIVE when the
    predicted law and another are both kept (or fewer than 3 points were fitted), REPORTED for
    claims whose status is 'open'."""
    from sandbox.verify.base import verdict

    rows = []
    for var, (labels, d) in ((v, g) for v in LAWS for g in _groups(rates, v)):
        values, y, n = _points(d, var)
        res = fit_exponent(var, values, y, n)
        rows.append({**labels, "variable": var, "points": values.size,
                     "range": f"{values.min():g}..{values.max():g}" if values.size else "", **res})
    out = pd.DataFrame(rows)
    if predictions is None or out.empty:
        return out
    out = out.merge(predictions, on=["rule", "variable"], how="left")
    verdicts = []
    for r in out.to_dict("records"):
        alpha, (lo, hi) = law_measurement(r)
        if np.isnan(alpha):
            verdicts.append("REPORTED" if r["status"] == "open" else "INCONCLUSIVE")
            continue
        verdicts.append(verdict(LAWS[r["variable"]][r["law_pred"]], alpha, TOLERANCE, r["status"],
                                "exponent", lo, hi)[1])
    out["verdict"] = verdicts
    return out

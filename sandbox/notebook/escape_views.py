r"""Notebook 04's figures, drawn from the saved tables of :mod:`sandbox.escape`.

Theory (catalogue §5, docs/theory.md; :mod:`theory.escape`): the escape rate from a minimum of sharpness
H_a = k·h0 over a barrier ΔL is Γ = ν·exp(−E) with the exponent E = ΔL/T (Kramers 1940; Xie,
Sato & Sugiyama, ICLR 2021), whose dependence on the sharpness differs by rule:
E ∝ 1/k (SGD, heavy ball, Adai), E ∝ 1/√k (Adam), E ∝ k⁰ (root-free, derived here; open).
:mod:`sandbox.escape.laws` fits −log Γ against the candidate regressors with Kramers' prefactor
taken out and decides which law the data follow (the exponent α̂ of E ∝ k^−α with its 95%
profile-likelihood interval).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .style import rule_colors, use_style

AXES = {"k": ("1/k  (H_a = k·h0; dimensionless)", lambda v: 1.0 / v, "k"),
        "B": ("batch size B", lambda v: v, "B"),
        "eta": ("1/η  (1/learning rate)", lambda v: 1.0 / v, "lr")}


def draw_rates(rates: pd.DataFrame, var: str = "k", problem: str = "double_well", axes=None):
    """One panel per rule: measured −log Γ (points with 95% intervals) against the sweep's
    regressor, and Kramers' prediction with the rule's own temperature (line,
    ``predicted_neg_log_rate``). Only rows of a sweep in ``var`` on ``problem``.
    Returns the figure."""
    import matplotlib.pyplot as plt

    from sandbox.escape.laws import MIN_EVENTS, OTHERS

    use_style()
    label, tx, col = AXES[var]
    part = rates[rates["problem"] == problem]
    keys = ["rule"] + [c for c in OTHERS[var] if c in part.columns]
    sweeps = [(key, d.sort_values(col)) for key, d in part.groupby(keys, sort=False)
              if d[col].nunique() >= 2]
    if not sweeps:
        raise ValueError(f"no sweep in {var!r} on problem {problem!r} in this table")
    from sandbox.plotting import predicted_kw

    if axes is None:
        ncols = min(3, len(sweeps))
        nrows = (len(sweeps) + ncols - 1) // ncols
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.0 * nrows + 0.6),
                                 squeeze=False, layout="constrained")
        for ax in list(axes.flat)[len(sweeps):]:
            ax.set_visible(False)
        axes = list(axes.flat)
    colours = rule_colors(k[0] for k, _ in sweeps)
    for ax, (key, d) in zip(axes, sweeps):
        rule, c = key[0], colours[key[0]]
        x, y = tx(d[col].to_numpy(float)), d["neg_log_rate"].to_numpy(float)
        ok = (d["n_escaped"] >= MIN_EVENTS).to_numpy() & np.isfinite(y)
        err = [y[ok] - d["nlr_lo"].to_numpy(float)[ok], d["nlr_hi"].to_numpy(float)[ok] - y[ok]]
        ax.errorbar(x[ok], y[ok], yerr=err, fmt="o", color=c, mfc="white", capsize=2, zorder=2,
                    label="measured, 95% interval")
        if (~ok).any():
            ax.plot(x[~ok], d["nlr_lo"].to_numpy(float)[~ok], "v", mfc="none", color=c, zorder=2,
                    label=f"< {MIN_EVENTS} escapes (lower bound)")
        ax.plot(x, d["predicted_neg_log_rate"], **predicted_kw("k", lw=1.4),
                label="predicted: Kramers")
        ax.set(xlabel=label, title=rule, ylabel="−log Γ (per particle-step)")
    fig = axes[0].figure
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=3)
    return fig


def draw_exponents(decisions: pd.DataFrame, ax=None):
    """The fitted exponent α̂ (E ∝ x^−α) with its 95% interval per rule and sweep, against the
    predicted α (hollow diamond) and the candidate laws (dotted lines at 0, 1/2, 1)."""
    import matplotlib.pyplot as plt

    use_style()
    if ax is None:
        _, ax = plt.subplots(figsize=(1.1 * len(decisions) + 3.0, 4.2), layout="constrained")
    d = decisions.reset_index(drop=True)
    names = [f"{r.rule}\n{r.problem}\n{r.variable}" for r in d.itertuples()]
    colours = rule_colors(d["rule"])
    for i, r in d.iterrows():
        c = colours[r["rule"]]
        ax.errorbar([i], [r["alpha_hat"]], yerr=[[r["alpha_hat"] - r["alpha_lo"]],
                                                 [r["alpha_hi"] - r["alpha_hat"]]],
                    fmt="o", color=c, capsize=4, ms=7)
        if "alpha_pred" in d and np.isfinite(r.get("alpha_pred", np.nan)):
            ax.plot([i], [r["alpha_pred"]], "D", mfc="none", color="k", ms=8)
    for a in (0.0, 0.5, 1.0):
        ax.axhline(a, ls=":", color="0.5", lw=1)
    ax.plot([], [], "o", color="0.3", label="fitted α̂ (95% profile interval)")
    ax.plot([], [], "D", mfc="none", color="k", label="predicted α")
    ax.set_xticks(range(len(d)), names)
    ax.set(ylabel="exponent α of E ∝ k^−α (B^α, η^−α)",
           title="which law do the escape rates follow?")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax.figure


def decision_rows(decisions: pd.DataFrame) -> list[dict]:
    """The verdict rows of the decisions, in the form and by the rule of ``verify``'s escape
    family: the measured exponent is the law the data follow, its interval the laws they do not
    reject (:func:`sandbox.escape.laws.law_measurement`), so the table and ``summary`` agree."""
    from sandbox.escape.laws import LAWS, TOLERANCE, law_measurement

    from .verdicts import claim_row

    rows = []
    for r in decisions.itertuples():
        measured, interval = law_measurement(r)
        rows.append(claim_row(
            f"escape.{r.family}", r.rule, f"{r.problem}, {r.variable} in {r.range} ({r.at})",
            LAWS[r.variable][r.law_pred], measured, TOLERANCE, kind="exponent", status=r.status,
            interval=interval,
            note=f"law {r.law} (predicted {r.law_pred}); laws not rejected: {r.laws_kept}; "
                 f"α̂ = {r.alpha_hat:.2f} [{r.alpha_lo:.2f}, {r.alpha_hi:.2f}]"))
    return rows

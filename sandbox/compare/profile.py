r"""Performance profiles over problems (Dolan & Moré, "Benchmarking optimization software with
performance profiles", Math. Programming 91, 2002), as AlgoPerf scores training algorithms
(Dahl et al., "Benchmarking Neural Network Training Algorithms", 2023).

For problems p and rules s, the cost :math:`t_{p,s}` is a rule's time to the problem's target
(median over its seeds, a seed that never reaches it counting as infinite: see
:mod:`.summary`) in training steps or in training seconds. The performance ratio is
:math:`r_{p,s} = t_{p,s} / \min_{s'} t_{p,s'}` (infinite for a rule that does not reach the
target, and for every rule on a problem that none reaches), and the profile of a rule is

.. math:: \rho_s(\tau) = \frac{1}{n_p}\,\big|\{p : r_{p,s} \le \tau\}\big|,

the fraction of problems on which it is within a factor τ of the best: ρ_s(1) is the fraction it
wins, ρ_s(τ) for large τ the fraction it solves at all.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd

MEASURES = {"steps_to_target": "training steps to target",
            "train_s_to_target": "training seconds to target"}


def profile_table(summaries: Mapping[str, pd.DataFrame],
                  measures=tuple(MEASURES)) -> pd.DataFrame:
    """One row per (problem, rule): target, the costs, and their ratios to the best rule on the
    problem (``ratio_<measure>``); NaN costs (no run) and non-reached ones are infinite."""
    rows = []
    for problem, summary in summaries.items():
        for _, r in summary.iterrows():
            row = {"problem": problem, "rule": r["rule"], "target_acc": r.get("target_acc"),
                   "reached_target": r.get("reached_target"),
                   "best_valid_acc": r.get("best_valid_acc")}
            for m in measures:
                v = float(r.get(m, math.nan))
                row[m] = v if math.isfinite(v) else math.inf
            rows.append(row)
    table = pd.DataFrame(rows)
    for m in measures:
        best = table.groupby("problem")[m].transform("min")
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = table[m] / best
        table[f"ratio_{m}"] = ratio.where(np.isfinite(best) & np.isfinite(table[m]), math.inf)
    return table


def profile_curve(ratios, taus) -> np.ndarray:
    """ρ(τ) at each τ of ``taus`` for one rule's ratios over the problems."""
    r = np.asarray(ratios, dtype=float)
    return np.array([(r <= t).mean() if r.size else math.nan for t in np.asarray(taus, float)])


def profile_points(table: pd.DataFrame, measure: str = "steps_to_target") -> pd.DataFrame:
    """The step function ρ_s(τ) of every rule: one row per (rule, τ) at the τ where it jumps
    (the finite ratios), with τ = 1 first; ``rho`` is the fraction of problems with r ≤ τ."""
    rows = []
    col = f"ratio_{measure}"
    finite = table[col][np.isfinite(table[col])]
    tau_max = float(finite.max()) if len(finite) else 1.0
    for rule, g in table.groupby("rule", sort=False):
        taus = sorted({1.0, tau_max, *[float(x) for x in g[col] if math.isfinite(x)]})
        for t, rho in zip(taus, profile_curve(g[col], taus)):
            rows.append({"rule": rule, "tau": t, "rho": float(rho), "measure": measure})
    return pd.DataFrame(rows)


def format_profile(table: pd.DataFrame) -> str:
    """The costs and ratios per problem as text, and ρ(1) (wins) and ρ(∞) (solved) per rule."""
    lines = ["time to target per problem (median over seeds; ratio to the best rule there):"]
    for problem, g in table.groupby("problem", sort=False):
        target = g["target_acc"].iloc[0]
        lines.append(f"  {problem} (target {target:.1%} validation accuracy):")
        for _, r in g.iterrows():
            if math.isfinite(r["steps_to_target"]):
                sec = r["train_s_to_target"]
                sec_s = f", {sec:.1f} s (×{r['ratio_train_s_to_target']:.2f})" if math.isfinite(sec) else ""
                lines.append(f"    {r['rule']:<10} {r['steps_to_target']:.0f} steps "
                             f"(×{r['ratio_steps_to_target']:.2f}){sec_s}  [{r['reached_target']} seeds]")
            else:
                best = r["best_valid_acc"]
                best_s = f"best {best:.4f}" if isinstance(best, float) and math.isfinite(best) else "no run"
                lines.append(f"    {r['rule']:<10} not reached ({best_s}; {r['reached_target']} seeds)")
    n = table["problem"].nunique()
    lines.append(f"performance profile over {n} problem(s) (Dolan & Moré 2002): ρ(1) = fraction "
                 "of problems where the rule is fastest, ρ(∞) = fraction it reaches the target")
    for rule, g in table.groupby("rule", sort=False):
        r = g["ratio_steps_to_target"]
        lines.append(f"    {rule:<10} steps: ρ(1) = {float((r <= 1).mean()):.2f}, "
                     f"ρ(∞) = {float(np.isfinite(r).mean()):.2f}")
    return "\n".join(lines)

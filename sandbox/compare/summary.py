"""Tables of a comparison, computed from the saved curves.

- :func:`run_table`: one row per reported run (final test loss/accuracy, steps to the target).
- :func:`summary_table`: one row per rule: mean ± half-width of the 95% Student-t confidence
  interval over the seeds that did not diverge, ``mean ± t_{0.975, n−1}·s/√n`` (NaN half-width
  for n = 1), the number of diverged seeds, and steps to the target accuracy (median over the
  seeds that reached it, and how many did).
- :func:`tuning_table`: one row per (rule, lr) of the tuning grid, the chosen lr marked.

"Steps to target" is the first EVALUATION step whose test accuracy reaches the target: its
resolution is the evaluation interval (one epoch by default).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .protocol import Plan
from .store import ResultStore, RunKey


def t_interval(values) -> tuple[float, float]:
    """(mean, half-width of the two-sided 95% t interval) of the finite values."""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    if len(x) == 1:
        return float(x[0]), math.nan
    return float(x.mean()), float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def steps_to_target(curve: pd.DataFrame, target: float) -> float:
    hit = curve.loc[curve["test_acc"] >= target, "step"]
    return float(hit.iloc[0]) if len(hit) else math.nan


def run_table(store: ResultStore, keys: list[RunKey], target: float) -> pd.DataFrame:
    rows = []
    for key in keys:
        if not store.is_done(key):
            continue
        rec, curve = store.record(key), store.curves([key]).sort_values("step")
        last = curve.iloc[-1]
        diverged = rec["status"] == "diverged"
        rows.append({
            "rule": key.rule, "phase": key.phase, "lr": key.lr, "seed": key.seed,
            "status": rec["status"], "steps": rec["steps"], "last_step": int(last["step"]),
            "test_loss": math.nan if diverged else float(last["test_loss"]),
            "test_acc": math.nan if diverged else float(last["test_acc"]),
            "valid_acc": math.nan if diverged else float(last["valid_acc"]),
            "steps_to_target": steps_to_target(curve, target), "wall_s": rec["wall_s"],
            "engine": rec["engine"]})
    return pd.DataFrame(rows)


def summary_table(runs: pd.DataFrame, target: float) -> pd.DataFrame:
    rows = []
    for rule, g in runs.groupby("rule", sort=False):
        ok = g[g["status"] == "finished"]
        loss, loss_ci = t_interval(ok["test_loss"])
        acc, acc_ci = t_interval(ok["test_acc"])
        reached = g["steps_to_target"].dropna()
        n_div = int((g["status"] == "diverged").sum())
        rows.append({
            "rule": rule, "phase": g["phase"].iloc[0], "lr": g["lr"].iloc[0], "seeds": len(g),
            "diverged": n_div, "test_loss": loss, "test_loss_ci95": loss_ci,
            "test_acc": acc, "test_acc_ci95": acc_ci, "target_acc": target,
            "steps_to_target": float(reached.median()) if len(reached) else math.nan,
            "reached_target": f"{len(reached)}/{len(g)}",
            "note": f"{n_div}/{len(g)} seeds diverged" if n_div else ""})
    return pd.DataFrame(rows)


def tuning_table(store: ResultStore, plan: Plan) -> pd.DataFrame:
    rows = []
    for rule, keys in plan.tune.items():
        for key in keys:
            rec = store.record(key)
            last = store.curves([key]).sort_values("step").iloc[-1]
            rows.append({"rule": rule, "lr": key.lr, "status": rec["status"],
                         "valid_acc": float(last["valid_acc"]), "valid_loss": float(last["valid_loss"]),
                         "test_acc": float(last["test_acc"]), "chosen": key.lr == plan.best_lr.get(rule)})
    return pd.DataFrame(rows)


def format_summary(summary: pd.DataFrame) -> str:
    """The summary as aligned text (what the CLI prints)."""
    lines = [f"{'rule':<11}{'lr':>9}  {'test acc (95% CI)':<22}{'test loss (95% CI)':<22}"
             f"{'steps to ' + format(summary['target_acc'].iloc[0], '.0%'):>16}  diverged"]
    for _, r in summary.iterrows():
        lines.append(f"{r['rule']:<11}{r['lr']:>9.3g}  {_pm(r['test_acc'], r['test_acc_ci95'], 4):<22}"
                     f"{_pm(r['test_loss'], r['test_loss_ci95'], 4, 'g'):<22}"
                     f"{_steps(r['steps_to_target'], r['reached_target']):>16}  "
                     f"{r['diverged']}/{r['seeds']}")
    return "\n".join(lines)


def _pm(m: float, h: float, digits: int, kind: str = "f") -> str:
    if not math.isfinite(m):
        return "—"
    return f"{m:.{digits}{kind}}" + (f" ± {h:.{digits}{kind}}" if math.isfinite(h) else "")


def _steps(s: float, reached: str) -> str:
    return f"{s:.0f} ({reached})" if math.isfinite(s) else f"never ({reached})"

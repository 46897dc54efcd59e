"""Tables of a comparison, computed from the saved curves and run records.

- :func:`run_table`: one row per reported run (final test loss/accuracy, time to the target).
- :func:`summary_table`: one row per rule: mean ± half-width of the 95% Student-t confidence
  interval over the seeds that did not diverge, ``mean ± t_{0.975, n−1}·s/√n`` (NaN half-width
  for n = 1), the SD over seeds, the number of diverged seeds, time to the target, the lr's
  provenance and every hyperparameter the rule ran with; the pairs of rules are in
  :mod:`.paired`.
- :func:`hyperparameter_table`: one row per (rule, hyperparameter): value and provenance.
- :func:`tuning_table`: one row per (rule, lr) of the tuning grid, the chosen lr marked.

"Steps to target" is the first checked step at which a seed's VALIDATION accuracy reaches the
target (AlgoPerf's convention: Dahl et al. 2023), checked every ``target_every`` steps (every
step, or every few where a check costs more than half a step; see
:mod:`sandbox.training.runs`); the rule's figure is the median over ALL its seeds, a seed that
never reached it counting as infinite — so a rule reaches the target when at least half its
seeds do, otherwise it is "not reached" and the best validation accuracy seen is given.
"Seconds to target" is the training time up to that step (evaluations excluded); seeds trained
stacked share their group's time, so it compares rules run on the same engine and seeds.
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


def steps_to_target(curve: pd.DataFrame, target: float, column: str = "valid_acc") -> float:
    """First evaluation step of ``curve`` whose ``column`` reaches ``target`` (NaN if none)."""
    hit = curve.loc[curve[column] >= target, "step"]
    return float(hit.iloc[0]) if len(hit) else math.nan


# torch's implementation switches, listed only when not at their defaults
IMPLEMENTATION_OPTIONS = {"maximize": False, "foreach": None, "fused": None, "capturable": False,
                          "differentiable": False}


def median_with_misses(values) -> float:
    """Median of ``values`` where NaN (not reached) counts as +inf: inf when half or more miss."""
    x = np.asarray([v if np.isfinite(v) else np.inf for v in values], dtype=float)
    if x.size == 0:
        return math.nan
    m = float(np.median(x))
    return m if math.isfinite(m) else math.inf


def run_table(store: ResultStore, keys: list[RunKey], target: float) -> pd.DataFrame:
    rows = []
    for key in keys:
        if not store.is_done(key):
            continue
        rec, curve = store.record(key), store.curves([key]).sort_values("step")
        last = curve.iloc[-1]
        diverged = rec["status"] == "diverged"
        tracked = rec.get("target") or {}
        if tracked:  # checked every target_every steps during training
            steps, seconds = _num(tracked.get("steps_to_target")), _num(tracked.get("train_s_to_target"))
            best, every = _num(tracked.get("best_acc")), tracked.get("target_every")
        else:  # a run without checks: the evaluation steps
            steps, seconds = steps_to_target(curve, target), math.nan
            best, every = float(curve["valid_acc"].max()), "eval"
        rows.append({
            "rule": key.rule, "phase": key.phase, "lr": key.lr, "seed": key.seed,
            "status": rec["status"], "steps": rec["steps"], "last_step": int(last["step"]),
            "test_loss": math.nan if diverged else float(last["test_loss"]),
            "test_acc": math.nan if diverged else float(last["test_acc"]),
            "valid_acc": math.nan if diverged else float(last["valid_acc"]),
            "steps_to_target": steps, "train_s_to_target": seconds, "best_valid_acc": best,
            "target_every": every, "wall_s": rec["wall_s"], "engine": rec["engine"],
            "group_size": rec.get("group_size", 1), "hp": rec.get("hp", {})})
    return pd.DataFrame(rows)


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def hyperparameter_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (rule, hyperparameter) of the reported runs: the value and its provenance."""
    rows = []
    for rule, g in runs.groupby("rule", sort=False):
        for name, (value, source) in (g["hp"].iloc[0] or {}).items():
            rows.append({"rule": rule, "name": name, "value": repr(value), "provenance": source})
    return pd.DataFrame(rows, columns=["rule", "name", "value", "provenance"])


def hp_line(hp: dict) -> str:
    """``name=value`` of every hyperparameter, the lr first; torch's implementation switches
    only where they differ from their defaults."""
    def fmt(v):
        return f"{v:g}" if isinstance(v, float) else (
            "(" + ", ".join(fmt(x) for x in v) + ")" if isinstance(v, (list, tuple)) else repr(v))
    items = sorted(hp.items(), key=lambda kv: kv[0] != "lr")
    shown = [f"{k}={fmt(v[0])}" for k, v in items
             if not (k in IMPLEMENTATION_OPTIONS and v[0] == IMPLEMENTATION_OPTIONS[k])]
    return ", ".join(shown)


def summary_table(runs: pd.DataFrame, target: float, plan: Plan | None = None) -> pd.DataFrame:
    rows = []
    for rule, g in runs.groupby("rule", sort=False):
        ok = g[g["status"] == "finished"]
        loss, loss_ci = t_interval(ok["test_loss"])
        acc, acc_ci = t_interval(ok["test_acc"])
        n_reached = int(g["steps_to_target"].notna().sum())
        n_div = int((g["status"] == "diverged").sum())
        hp = g["hp"].iloc[0] or {}
        notes = list((plan.notes.get(rule, []) if plan else []))
        if n_div:
            notes.insert(0, f"{n_div}/{len(g)} seeds diverged")
        every = sorted({str(v) for v in g["target_every"]})
        rows.append({
            "rule": rule, "phase": g["phase"].iloc[0], "lr": g["lr"].iloc[0],
            "lr_source": (hp.get("lr") or [None, ""])[1], "seeds": len(g),
            "diverged": n_div, "test_loss": loss, "test_loss_ci95": loss_ci,
            "test_acc": acc, "test_acc_ci95": acc_ci,
            "test_acc_sd": float(ok["test_acc"].std(ddof=1)) if len(ok) > 1 else math.nan,
            "target_acc": target,
            "steps_to_target": median_with_misses(g["steps_to_target"]),
            "train_s_to_target": median_with_misses(g["train_s_to_target"]),
            "reached_target": f"{n_reached}/{len(g)}",
            "best_valid_acc": float(g["best_valid_acc"].max()),
            "target_every": ",".join(every), "engine": ",".join(sorted(set(g["engine"]))),
            "hyperparameters": hp_line(hp), "note": "; ".join(notes)})
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


def format_summary(summary: pd.DataFrame, pairs: pd.DataFrame | None = None) -> str:
    """The summary as aligned text (what the CLI prints): per rule the lr, test accuracy and
    loss (mean ± 95% t half-width over seeds), time to target and diverged seeds; then the
    paired comparisons (:func:`sandbox.compare.paired.format_pairs`) and every hyperparameter."""
    from .paired import format_pairs

    if pairs is None:
        pairs = summary.attrs.get("pairs")
    target = summary["target_acc"].iloc[0]
    lines = [f"{'rule':<11}{'lr':>9}  {'test acc (95% CI)':<22}{'test loss (95% CI)':<22}"
             f"{'steps to ' + format(target, '.0%') + ' valid':>24}  diverged"]
    for _, r in summary.iterrows():
        lines.append(f"{r['rule']:<11}{r['lr']:>9.3g}  {_pm(r['test_acc'], r['test_acc_ci95'], 4):<22}"
                     f"{_pm(r['test_loss'], r['test_loss_ci95'], 4, 'g'):<22}"
                     f"{_steps(r):>24}  {r['diverged']}/{r['seeds']}")
    if "train_s_to_target" in summary:
        every = sorted({e for v in summary.get("target_every", []) for e in str(v).split(",") if e})
        lines.append(f"steps to target: first step whose validation accuracy reaches "
                     f"{target:.1%}, median over seeds (a seed that never does counts as "
                     f"infinite), checked every {'/'.join(every) or '?'} step(s); (k/n) seeds "
                     "reached it; s = training seconds to it (evaluations excluded; stacked "
                     "seeds share their group's time)")
    if pairs is not None:
        lines += ["", format_pairs(pairs)]
    if "hyperparameters" in summary:
        lines += ["", "hyperparameters each rule ran with (hyperparameters.csv: with provenance):"]
        for _, r in summary.iterrows():
            src = f"  [lr: {r['lr_source']}]" if isinstance(r.get("lr_source"), str) and r["lr_source"] else ""
            lines.append(f"  {r['rule']:<10} {r['hyperparameters']}{src}")
    return "\n".join(lines)


def _pm(m: float, h: float, digits: int, kind: str = "f") -> str:
    if not math.isfinite(m):
        return "—"
    return f"{m:.{digits}{kind}}" + (f" ± {h:.{digits}{kind}}" if math.isfinite(h) else "")


def _steps(r) -> str:
    s, reached = r["steps_to_target"], r["reached_target"]
    if isinstance(s, float) and math.isfinite(s):
        sec = r.get("train_s_to_target", math.nan)
        return f"{s:.0f}" + (f" {sec:.1f}s" if isinstance(sec, float) and math.isfinite(sec) else "") + f" ({reached})"
    best = r.get("best_valid_acc", math.nan)
    best = f", best {best:.4f}" if isinstance(best, float) and math.isfinite(best) else ""
    return f"not reached ({reached}{best})"

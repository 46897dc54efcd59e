r"""Scale-invariant layers of a small BatchNorm net under a learning-rate schedule: per layer ‖w_t‖,
Δ_t and ‖g_t‖/‖w_t‖ for several rules, and each layer's late rise of ‖g‖/‖w‖.

The network counterpart of :mod:`sandbox.experiments.schedule_toy` (Defazio 2025: under a decaying
lr the steady state ‖g‖/‖w‖ = sqrt(2λ/γ_t) of a normalised layer rises at the end of training;
AdamC/SGDC's corrected decay keeps it flat). Each run is :func:`sandbox.probes.runs.probed_run`
with ``lr_schedule`` (the group lr set to γ_t before step t, ``initial_lr`` = γ_max) and
``normalised_groups=True`` (the param groups from the architecture's ground truth, the
``normalized`` key AdamC/SGDC require), 1-D parameters without decay (``decay_vectors=False``).

Default regime: ``freeze_non_invariant=True`` — only the scale-invariant weights train (the
classifier and BatchNorm affine parameters stay at their initial values), so the logits have a
bounded scale, the training loss cannot reach zero and the gradient stays noise-dominated, the
regime of the theory (see :mod:`sandbox.probes.runs`). With every parameter trained, the small
digits set is interpolated near the end of the run and ‖g‖ collapses, which hides the rise.

Storage: one CSV per (rule, seed) under ``out``, written as the run goes (``probed_run``'s
partial file) and named by a key of everything that defines the run, so a rerun with the same
setting returns the saved tables without training and a changed setting never reuses them.

>>> table = run_schedule_nets("results/sched_nets", rules=("adamw", "adamc"))   # doctest: +SKIP
>>> late_rises(table)              # smoothed over a tenth of the run                                                # doctest: +SKIP

Command line (the notebook's full-size side-by-side)::

    python -m sandbox.experiments.schedule_nets --out results/schedule_nets
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Optional

import numpy as np
import pandas as pd

from sandbox.experiments.run_cache import run_key
from theory.schedules import rise_statistic

RULES = ("adamw", "adamc", "adamp", "rvadamw")
HP = {"weight_decay": 0.5, "betas": (0.9, 0.99)}  # γλ = 5e-3 at the peak: τ = 100 steps (k = 0)
PEAK = 1e-2
STEPS = 3000
EVERY = 10
WINDOW_FRACTION = 0.1  # default smoothing window of ‖g‖/‖w‖: a tenth of the run (the late tail's length)
COLUMNS = ("rule", "seed", "layer", "step", "lr", "norm", "delta", "grad_norm", "grad_ratio")
VERSION = 1  # changes when what a run records changes


def net_schedule(kind: str = "cosine", steps: int = STEPS, peak: float = PEAK, **params):
    """:func:`theory.schedules.schedule` (a covered family; ``params``: warmup, floor, ...)."""
    from theory.schedules import schedule

    return schedule(kind, steps, peak, **params)


def run_path(out, problem: str, rule: str, seed: int, key: Mapping) -> Path:
    """The CSV of one run: ``<out>/<problem>_<rule>_seed<seed>_<key hash>.csv``."""
    return Path(out) / f"{problem}_{rule}_seed{seed}_{run_key(dict(key))}.csv"


def tidy(probes: pd.DataFrame) -> pd.DataFrame:
    """The scale-invariant rows (ground truth) of a probe table, columns :data:`COLUMNS`
    (``grad_ratio`` = ``grad_norm``/``norm``), sorted by rule (in the order run), seed, layer and step."""
    inv = probes[probes["scale_invariant"].astype(bool)]
    out = inv.assign(grad_ratio=inv["grad_norm"] / inv["norm"])[list(COLUMNS)]
    order = {r: i for i, r in enumerate(dict.fromkeys(out["rule"]))}  # the rules' order as run
    out = out.assign(_o=out["rule"].map(order)).sort_values(["_o", "seed", "layer", "step"])
    return out.drop(columns="_o").reset_index(drop=True)


def run_schedule_nets(out, rules: Iterable[str] = RULES, seeds: Iterable[int] = (0, 1, 2), *,
                      problem: str = "digits-bnmlp", kind: str = "cosine", steps: int = STEPS,
                      peak: float = PEAK, schedule_params: Optional[Mapping] = None,
                      hp: Optional[Mapping] = None, every: int = EVERY,
                      freeze_non_invariant: bool = True, device: str = "cpu",
                      threads: Optional[int] = 1, progress=None) -> pd.DataFrame:
    """Train each rule × seed on ``problem`` under the schedule ``kind`` (``steps`` steps, peak lr
    ``peak``) with the same ``hp`` (default :data:`HP`), probes every ``every`` steps; return the
    tidy per-layer table of :func:`tidy` (the full probe tables stay in the CSVs under ``out``).

    A run whose CSV exists is read back, not repeated (module docstring)."""
    from sandbox.problems import get_problem
    from sandbox.probes.runs import probed_run

    hp = dict(HP if hp is None else hp)
    sched = net_schedule(kind, steps, peak, **dict(schedule_params or {}))
    prob = None
    rules, seeds = list(rules), [int(s) for s in seeds]
    bar = progress(total=len(rules) * len(seeds), desc="runs") if progress else None
    frames = []
    for rule in rules:
        for seed in seeds:
            key = {"problem": problem, "rule": rule, "seed": seed, "kind": kind, "steps": steps,
                   "peak": peak, "schedule": dict(schedule_params or {}), "hp": hp,
                   "every": every, "freeze": freeze_non_invariant, "device": device,
                   "version": VERSION}
            path = run_path(out, problem, rule, seed, key)
            if prob is None and not path.exists():
                prob = get_problem(problem, device=device)
            frames.append(probed_run(prob, rule, hp, steps, seed=seed, schedule=every, path=path,
                                     lr_schedule=sched.gamma, normalised_groups=True,
                                     decay_vectors=False, threads=threads,
                                     freeze_non_invariant=freeze_non_invariant,
                                     labels={"problem": problem, "kind": kind}))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return tidy(pd.concat(frames, ignore_index=True))


def default_window(table: pd.DataFrame) -> int:
    """:data:`WINDOW_FRACTION` of the recorded span of steps (at least one step)."""
    span = float(table["step"].max() - table["step"].min()) if len(table) else 0.0
    return max(1, int(round(WINDOW_FRACTION * span)))


def smoothed_ratio(table: pd.DataFrame, window: Optional[int] = None) -> pd.DataFrame:
    """``table`` (of :func:`tidy`) with ``grad_ratio_smooth``: per rule, seed and layer the rms of
    ‖g‖/‖w‖ over the last ``window`` steps' records, (t − window, t] (default
    :func:`default_window`: a tenth of the run); rows before the first full window are dropped
    (a partial window would be noisier than the rest). One mini-batch gradient is noisy, and
    the late rise (a max over the tail over a min over the run) is biased upwards by noise: the
    wider the window, the smaller that bias and the coarser the time resolution."""
    window = default_window(table) if window is None else int(window)
    parts = []
    for _, g in table.groupby(["rule", "seed", "layer"], sort=False):
        g = g.sort_values("step")
        spacing = float(np.median(np.diff(g["step"]))) if len(g) > 1 else 1.0
        n = max(1, int(round(window / spacing)))
        sq = g["grad_ratio"].pow(2).rolling(n, min_periods=n).mean()
        parts.append(g.assign(grad_ratio_smooth=np.sqrt(sq)).dropna(subset=["grad_ratio_smooth"]))
    return pd.concat(parts, ignore_index=True) if parts else table.assign(grad_ratio_smooth=[])


def late_rises(table: pd.DataFrame, window: Optional[int] = None,
               tail: float = 0.1) -> pd.DataFrame:
    """Per rule, seed and layer: the late rise of ‖g‖/‖w‖ (:func:`theory.schedules.rise_statistic`
    of the series smoothed by a trailing rms over ``window`` steps, :func:`smoothed_ratio`; default a tenth of
    the run). Columns ``rule, seed, layer, late_rise, window, tail``."""
    window = default_window(table) if window is None else int(window)
    s = smoothed_ratio(table, window)
    rows = [{"rule": r, "seed": sd, "layer": layer,
             "late_rise": rise_statistic(g["lr"], g["grad_ratio_smooth"], tail),
             "window": window, "tail": tail}
            for (r, sd, layer), g in s.groupby(["rule", "seed", "layer"], sort=False)]
    return pd.DataFrame(rows)


def late_rise_summary(rises: pd.DataFrame) -> pd.DataFrame:
    """Per rule and layer: mean, SD, min and max of the late rise over seeds, and the seeds'
    95% t interval of the mean (``lo``, ``hi``; equal to the mean for one seed)."""
    from scipy import stats

    rows = []
    for (rule, layer), g in rises.groupby(["rule", "layer"], sort=False):
        v = g["late_rise"].to_numpy(float)
        m = float(v.mean())
        h = (float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
             if len(v) > 1 else 0.0)
        rows.append({"rule": rule, "layer": layer, "seeds": len(v), "mean": m,
                     "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
                     "min": float(v.min()), "max": float(v.max()), "lo": m - h, "hi": m + h})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m sandbox.experiments.schedule_nets",
                                 description="late rise of ‖g‖/‖w‖ per rule on a BN net under a "
                                             "cosine schedule (runs cached under --out)")
    ap.add_argument("--out", default="results/schedule_nets")
    ap.add_argument("--rules", default=",".join(RULES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--problem", default="digits-bnmlp")
    ap.add_argument("--window", type=int, default=None,
                    help="smoothing window in steps (default: a tenth of the run)")
    a = ap.parse_args(argv)
    table = run_schedule_nets(a.out, a.rules.split(","), range(a.seeds), problem=a.problem,
                              steps=a.steps)
    summary = late_rise_summary(late_rises(table, a.window))
    with pd.option_context("display.width", 120):
        print(summary.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["RULES", "HP", "PEAK", "STEPS", "WINDOW_FRACTION", "default_window", "net_schedule", "run_schedule_nets", "tidy",
           "smoothed_ratio", "late_rises", "late_rise_summary", "run_path"]

"""Fair comparisons of rules on a problem: the DeepOBS-style protocol, resumable on disk.

>>> from sandbox.compare import CompareConfig, compare
>>> summary = compare(CompareConfig(problem="digits-bnmlp", optimizers=("sgdp", "adamp"),
...                                 seeds=3, mode="defaults"), out="results/compare/demo")  # doctest: +SKIP

The same from a shell: ``python -m sandbox compare --problem digits-bnmlp --defaults``.
``summary.attrs["pairs"]`` (and ``pairs.csv``) holds every pair of rules: the paired difference
of the seeds, its 95% interval, the paired t-test, the verdict in words and the detectable
difference (:mod:`.paired`); ``--problems a,b,c`` adds performance profiles (:mod:`.profile`).
The CLI runs torch with one CPU thread by default; from Python, ``torch.set_num_threads(1)``
does the same (these nets' ops are too small for intra-op threads, which stall on a busy CPU).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .config import (DEFAULT_LR_GRID, DEFAULT_OPTIMIZERS, CompareConfig, parse_hp, parse_lr_grid,
                     validate)
from .effective_step import effective_step_table
from .figures import make_figures
from .protocol import Plan, build_problem, open_comparison, run_compare, select_best
from .lock import FolderBusy, FolderLock
from .store import ConfigMismatch, ResultStore, RunKey, write_atomic, write_csv
from .paired import detectable_difference, format_pairs, paired_table, paired_test, seeds_needed
from .summary import (format_summary, hyperparameter_table, run_table, summary_table, t_interval,
                      tuning_table)
from .summary_figure import summary_figure


def compare(cfg: CompareConfig, out: str | Path, progress: bool = True, figures: bool = True,
            log=None, opened=None) -> pd.DataFrame:
    """Run or resume ``cfg`` into ``out``; write ``runs.csv``, ``summary.csv``, ``tuning.csv``
    (tune mode) and the figures; return the summary (one row per rule, in ``cfg.optimizers``'
    order). ``opened``: :func:`open_comparison`'s result, if the caller checked the input first.
    The folder's lock is released when this returns or raises (Ctrl-C included)."""
    opened = opened or open_comparison(cfg, out)
    try:
        return _compare(cfg, out, progress, figures, log, opened)
    finally:
        opened[1].close()


def _compare(cfg: CompareConfig, out: str | Path, progress: bool, figures: bool, log,
             opened) -> pd.DataFrame:
    plan = run_compare(cfg, out, progress=progress, log=log, opened=opened)
    out, store = Path(out), opened[1]
    target = plan.target
    keys = [k for rule in cfg.optimizers for k in plan.final.get(rule, [])]
    runs = run_table(store, keys, target)
    write_csv(runs.drop(columns=["hp"], errors="ignore"), out / "runs.csv")
    summary = summary_table(runs, target, plan) if len(runs) else pd.DataFrame()
    for rule in cfg.optimizers:  # rules whose whole grid diverged still get a row
        if rule not in set(summary.get("rule", [])):
            nan = float("nan")
            row = pd.DataFrame([{"rule": rule, "phase": "tune", "lr": nan, "lr_source": "",
                                 "seeds": 0, "diverged": 0, "test_loss": nan,
                                 "test_loss_ci95": nan, "test_acc": nan, "test_acc_ci95": nan,
                                 "test_acc_sd": nan, "target_acc": target,
                                 "steps_to_target": nan, "train_s_to_target": nan,
                                 "reached_target": "0/0", "best_valid_acc": nan,
                                 "target_every": "", "engine": "", "hyperparameters": "",
                                 "note": "every lr of the grid diverged"}])
            summary = pd.concat([summary, row], ignore_index=True)
    order = {r: i for i, r in enumerate(cfg.optimizers)}
    summary = summary.sort_values("rule", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)
    pairs = paired_table(runs, cfg.optimizers) if len(runs) else pd.DataFrame()
    write_csv(summary, out / "summary.csv")
    write_csv(pairs, out / "pairs.csv")
    if len(runs):
        write_csv(hyperparameter_table(runs), out / "hyperparameters.csv")
    if plan.tune:
        write_csv(tuning_table(store, plan), out / "tuning.csv")
    if figures:
        make_figures(out)
        summary_figure(out)
    summary.attrs["pairs"] = pairs
    return summary


__all__ = ["compare", "CompareConfig", "validate", "parse_lr_grid", "parse_hp", "run_compare",
           "select_best", "open_comparison", "Plan", "ResultStore", "RunKey", "ConfigMismatch", "FolderBusy",
           "FolderLock", "write_atomic", "write_csv", "make_figures",
           "effective_step_table", "run_table", "summary_table", "tuning_table", "format_summary",
           "t_interval", "DEFAULT_LR_GRID", "DEFAULT_OPTIMIZERS", "build_problem", "paired_table",
           "paired_test", "format_pairs", "detectable_difference", "seeds_needed",
           "hyperparameter_table", "summary_figure"]

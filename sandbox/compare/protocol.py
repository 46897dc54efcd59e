"""The DeepOBS-style protocol (Schneider, Balles & Hennig, "DeepOBS: A Deep Learning Optimizer
Benchmark Suite", ICLR 2019): tune the learning rate of each rule on a log grid with one seed,
pick the value with the best final VALIDATION accuracy (the held-out split, as in DeepOBS 1.2;
diverged runs are never picked), then re-run that value with N seeds and report test metrics.
``mode='defaults'`` skips the tuning and runs each rule at its published defaults with N seeds.

All hyperparameters other than the learning rate stay at the rule's defaults unless fixed with
``CompareConfig.hp``; hyperparameters that a rule requires but has no published default for take
the problem's fallback (:mod:`sandbox.training.hyperparams`), recorded with their provenance.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

import sandbox

from ..problems import Problem, get_problem
from ..training import resolve_hyperparameters, total_steps, train_seeds
from .config import CompareConfig, validate
from .store import ResultStore, RunKey, write_csv


@dataclass
class Plan:
    """What a comparison ran: the tuning runs and the reported (final or defaults) runs per rule."""

    tune: dict[str, list[RunKey]]
    final: dict[str, list[RunKey]]
    best_lr: dict[str, float | None]
    target: float = float("nan")  # test accuracy of "steps to target"


def build_problem(cfg: CompareConfig) -> Problem:
    import torch

    return get_problem(cfg.problem, device=cfg.device, size=cfg.size,
                       dtype=getattr(torch, cfg.dtype), **cfg.problem_options)


def open_comparison(cfg: CompareConfig, out: str | Path) -> tuple[Problem, ResultStore]:
    """Check the configuration, build the problem and claim the folder ``out`` — everything that
    can fail because of bad input (ValueError, DataMissingError), before any training. The store
    holds the folder's lock (:class:`~sandbox.compare.lock.FolderBusy` if another live process
    does) until its ``close()``, which :func:`sandbox.compare.compare` calls when it ends."""
    validate(cfg)
    problem = build_problem(cfg)
    return problem, ResultStore(out, cfg, problem.describe(), lock=True)


def run_compare(cfg: CompareConfig, out: str | Path, progress: bool = True,
                log: Callable[[str], None] | None = None,
                opened: tuple[Problem, ResultStore] | None = None) -> Plan:
    """Run (or resume) the comparison into ``out``; return the plan of runs it holds.
    ``opened``: the result of :func:`open_comparison` if the caller already has it (the caller
    then releases its lock); otherwise the folder is opened, and released on return."""
    if opened is None:
        opened = open_comparison(cfg, out)
        try:
            return run_compare(cfg, out, progress=progress, log=log, opened=opened)
        finally:
            opened[1].close()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    problem, store = opened
    steps = total_steps(problem, cfg.epochs)
    plan = Plan({}, {}, {}, cfg.target or problem.target_accuracy)
    for rule in cfg.optimizers:
        fixed = dict(cfg.hp.get(rule, {}))
        if cfg.mode == "tune":
            keys = [RunKey("tune", rule, lr, 0) for lr in cfg.lr_grid]
            plan.tune[rule] = keys
            for key in store.pending(keys):
                _run_group(store, problem, cfg, rule, {**fixed, "lr": key.lr}, [key], steps, progress)
            best = select_best(store, keys)
            plan.best_lr[rule] = best
            if best is None:
                log(f"{rule}: every learning rate of the grid diverged; no final runs")
                plan.final[rule] = []
                continue
            log(f"{rule}: best lr {best:g} on the grid")
            lr, phase = best, "final"
        else:
            hp, _ = resolve_hyperparameters(rule, problem, fixed)
            lr, phase = float(hp.get("lr", sandbox.info(rule).defaults["lr"])), "defaults"
        keys = [RunKey(phase, rule, lr, s) for s in range(cfg.seeds)]
        plan.final[rule] = keys
        pending = store.pending(keys)
        given = fixed if phase == "defaults" else {**fixed, "lr": lr}  # keeps the lr's provenance
        if pending:
            _run_group(store, problem, cfg, rule, given, pending, steps, progress)
    return plan


def select_best(store: ResultStore, keys: list[RunKey]) -> float | None:
    """The lr with the best final validation accuracy (then lowest validation loss) among the
    runs that did not diverge; None if all diverged."""
    best, best_score = None, None
    for key in keys:
        if store.record(key)["status"] != "finished":
            continue
        last = store.curves([key]).iloc[-1]
        score = (last["valid_acc"], -last["valid_loss"])
        if best_score is None or score > best_score:
            best, best_score = key.lr, score
    return best


def _run_group(store: ResultStore, problem: Problem, cfg: CompareConfig, rule: str, given: dict,
               keys: list[RunKey], steps: int, progress: bool) -> None:
    """Train the runs ``keys`` (same rule and lr, different seeds) and record them."""
    hp, provenance = resolve_hyperparameters(rule, problem, given)
    by_seed = {k.seed: k for k in keys}

    def on_eval(rows: pd.DataFrame) -> None:
        for seed, sub in rows.groupby("seed"):
            store.append_rows(by_seed[int(seed)], sub)

    phase = keys[0].phase
    sink = _ProbeSink(store, by_seed, rule, phase) if cfg.probe_every and phase != "tune" else None
    if sink is not None and not sink.available:
        sink = None
    stacked = len(keys) > 1 and (cfg.engine == "stacked" or (cfg.engine == "auto" and problem.stack_seeds))
    start = time.perf_counter()
    curves = train_seeds(problem, rule, sorted(by_seed), hp, steps=steps, eval_every=cfg.eval_every,
                         stacked=stacked, on_eval=on_eval,
                         attach=sink.attach(cfg.probe_every) if sink else None,
                         progress=f"{phase} {rule} lr={keys[0].lr:g}" if progress else False)
    wall = time.perf_counter() - start
    for key in keys:
        c = curves[curves["seed"] == key.seed]
        status = "diverged" if bool(c["diverged"].any()) else "finished"
        store.finish(key, {"status": status, "steps": steps, "hp": provenance,
                           "engine": "stacked" if stacked else "loop", "group_size": len(keys),
                           "wall_s": wall, "device": str(problem.device),
                           "final_test_acc": float(c["test_acc"].iloc[-1]) if len(c) else math.nan})


class _ProbeSink:
    """Attaches :mod:`sandbox.probes` to a group's optimizer and files the records per seed."""

    def __init__(self, store: ResultStore, by_seed: dict[int, RunKey], rule: str, phase: str):
        self.store, self.by_seed, self.rule, self.phase = store, by_seed, rule, phase
        try:
            from sandbox import probes
            self.probes = probes
            self.available = hasattr(probes, "attach")
        except ImportError:
            self.probes, self.available = None, False

    def attach(self, every: int):
        def attach(optimizer, named_params, model, seeds):
            tmp = self.store.probes / f"_partial-{self.phase}-{self.rule}-{seeds[0]}.csv"
            tmp.unlink(missing_ok=True)
            probe = self.probes.attach(model, optimizer, named_params=named_params, schedule=every,
                                       labels={"rule": self.rule, "phase": self.phase}, path=tmp)
            return _Filed(probe, tmp, [self.store.probe_path(self.by_seed[s]) for s in seeds], seeds)
        return attach


class _Filed:
    """A probe whose ``detach`` also splits its table by replica into one file per seed."""

    def __init__(self, probe, tmp: Path, paths: list[Path], seeds: list[int]):
        self.probe, self.tmp, self.paths, self.seeds = probe, tmp, paths, seeds

    def detach(self) -> None:
        self.probe.detach()
        if not self.tmp.exists():
            return
        table = pd.read_csv(self.tmp)
        for replica, (path, seed) in enumerate(zip(self.paths, self.seeds)):
            part = table[table["replica"] == replica].assign(seed=seed, replica=0)
            write_csv(part, path)
        self.tmp.unlink()

"""The DeepOBS-style protocol (Schneider, Balles & Hennig, "DeepOBS: A Deep Learning Optimizer
Benchmark Suite", ICLR 2019): tune the learning rate of each rule on a log grid with one seed,
pick the value with the best final VALIDATION accuracy (the held-out split, as in DeepOBS 1.2;
diverged runs are never picked), then re-run that value with N seeds and report test metrics.
``mode='defaults'`` skips the tuning and runs each rule at its published defaults with N seeds.

All hyperparameters other than the learning rate stay at the rule's defaults unless fixed with
``CompareConfig.hp``. No silent choices: in ``'defaults'`` mode a rule whose learning rate has
NO published default (``sandbox.info(rule).defaults['lr']`` is REQUIRED: sgdp, adai) and was not
fixed with ``hp`` gets it by the documented TUNING RULE :data:`LR_RULE` — the DeepOBS step above
on ``cfg.lr_grid`` for that rule alone (seed 0, best final validation accuracy) — printed when
it runs and recorded as the lr's provenance; any other required hyperparameter without a value
is refused before anything runs (:func:`required_without_value`). A best lr at either end of
its grid is flagged (:attr:`Plan.notes`): the optimum may lie outside the grid, extend it.

The reported runs also track time to target (:mod:`sandbox.training.runs`): the first step at
which each seed's validation accuracy reaches ``Plan.target`` and the training seconds up to it,
stored in the run's record.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

import sandbox
from sandbox.optim.hyper import REQUIRED

from ..problems import Problem, get_problem
from ..training import resolve_hyperparameters, total_steps, train_seeds
from .config import CompareConfig, validate
from .store import ResultStore, RunKey, write_csv


LR_RULE = ("lr tuned on the grid (no published default): seed 0, best final validation "
           "accuracy, as in tune mode")


@dataclass
class Plan:
    """What a comparison ran: the tuning runs and the reported (final or defaults) runs per rule,
    the lr each rule's reported runs used and how it was chosen (``lr_source``), and notes to
    print (an lr at the edge of its grid, a grid that diverged everywhere)."""

    tune: dict[str, list[RunKey]]
    final: dict[str, list[RunKey]]
    best_lr: dict[str, float | None]
    target: float = float("nan")  # validation accuracy of "steps to target"
    lr_source: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)


def required_without_value(rule: str, fixed: dict) -> list[str]:
    """The hyperparameters of ``rule`` with no published default that ``fixed`` leaves unset,
    other than ``lr`` (which the tuning rule sets) and the root-free rules' ``batch_size`` (the
    problem's, :func:`~sandbox.training.resolve_hyperparameters`): a defaults run refuses to
    guess them. The keys the training loop fills from the architecture (adamc's and sgdc's
    ``normalized``: :mod:`sandbox.training.architecture_groups`) are not asked for."""
    from sandbox.training.architecture_groups import ARCHITECTURE_KEYS

    spec = sandbox.info(rule)
    return [k for k, v in spec.defaults.items()
            if v is REQUIRED and k not in fixed and k not in ("lr", "batch_size") + ARCHITECTURE_KEYS]


def needs_lr_tuning(cfg: CompareConfig, rule: str) -> bool:
    """Whether ``rule`` is tuned on the grid: always in tune mode; in defaults mode when its lr
    has no published default and ``cfg.hp`` does not fix it."""
    if cfg.mode == "tune":
        return True
    return sandbox.info(rule).defaults.get("lr") is REQUIRED and "lr" not in cfg.hp.get(rule, {})


def edge_note(lr: float, grid) -> str | None:
    """A note when ``lr`` is the smallest or largest value of a grid of more than one value."""
    grid = sorted(float(x) for x in grid)
    if len(grid) < 2:
        return None
    if lr >= grid[-1]:
        return (f"best lr {lr:g} is the TOP of its grid ({grid[0]:g}..{grid[-1]:g}): the optimum "
                f"may be larger; extend --lr-grid upward (e.g. {grid[0]:g}:{grid[-1] * 100:g}:"
                f"{len(grid) + 4})")
    if lr <= grid[0]:
        return (f"best lr {lr:g} is the BOTTOM of its grid ({grid[0]:g}..{grid[-1]:g}): the optimum "
                f"may be smaller; extend --lr-grid downward (e.g. {grid[0] / 100:g}:{grid[-1]:g}:"
                f"{len(grid) + 4})")
    return None


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
        notes = plan.notes.setdefault(rule, [])
        if needs_lr_tuning(cfg, rule):
            keys = [RunKey("tune", rule, lr, 0) for lr in cfg.lr_grid]
            plan.tune[rule] = keys
            for key in store.pending(keys):
                _run_group(store, problem, cfg, rule, {**fixed, "lr": key.lr}, [key], steps, progress)
            best = select_best(store, keys)
            plan.best_lr[rule] = best
            if best is None:
                log(f"{rule}: every learning rate of the grid diverged; no final runs")
                notes.append("every lr of the grid diverged")
                plan.final[rule] = []
                continue
            edge = edge_note(best, cfg.lr_grid)
            if edge:
                notes.append(edge)
            if cfg.mode == "tune":
                log(f"{rule}: best lr {best:g} on the grid" + (f" — {edge}" if edge else ""))
                lr, phase, source = best, "final", "tuned on the grid"
            else:
                log(f"{rule}: lr has no published default; tuning rule (seed 0 on the grid, best "
                    f"final validation accuracy): lr {best:g}" + (f" — {edge}" if edge else ""))
                lr, phase, source = best, "defaults", LR_RULE
        else:
            hp, _ = resolve_hyperparameters(rule, problem, fixed)
            lr, phase = float(hp.get("lr", sandbox.info(rule).defaults["lr"])), "defaults"
            source = "given" if "lr" in fixed else sandbox.info(rule).provenance.get("lr", "rule default")
        plan.lr_source[rule] = source
        keys = [RunKey(phase, rule, lr, s) for s in range(cfg.seeds)]
        plan.final[rule] = keys
        pending = store.pending(keys)
        given = {**fixed, "lr": lr} if rule in plan.tune else fixed  # keeps the lr's provenance
        if pending:
            _run_group(store, problem, cfg, rule, given, pending, steps, progress,
                       lr_source=None if rule not in plan.tune else source, target=plan.target)
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
               keys: list[RunKey], steps: int, progress: bool, lr_source: str | None = None,
               target: float | None = None) -> None:
    """Train the runs ``keys`` (same rule and lr, different seeds) and record them; ``target``:
    track time to this validation accuracy (reported runs); ``lr_source``: the lr's provenance
    when it was chosen by tuning."""
    hp, provenance = resolve_hyperparameters(rule, problem, given)
    if lr_source is not None:
        provenance["lr"] = (provenance["lr"][0], lr_source)
    by_seed = {k.seed: k for k in keys}
    reached: dict[int, dict] = {}

    def on_target(rows: pd.DataFrame) -> None:
        for row in rows.to_dict("records"):
            reached[int(row["seed"])] = row

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
                         progress=f"{phase} {rule} lr={keys[0].lr:g}" if progress else False,
                         target=target, target_every=cfg.target_every, on_target=on_target)
    wall = time.perf_counter() - start
    for key in keys:
        c = curves[curves["seed"] == key.seed]
        status = "diverged" if bool(c["diverged"].any()) else "finished"
        store.finish(key, {"status": status, "steps": steps, "hp": provenance,
                           "engine": "stacked" if stacked else "loop", "group_size": len(keys),
                           "wall_s": wall, "device": str(problem.device),
                           "final_test_acc": float(c["test_acc"].iloc[-1]) if len(c) else math.nan,
                           "target": {k: v for k, v in reached.get(key.seed, {}).items() if k != "seed"}})


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

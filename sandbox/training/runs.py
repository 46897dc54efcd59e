"""Training runs with evaluation: K seeds either stacked into one model or as a loop of K models.

Both engines take the same steps on the same batches (:mod:`.data_order`), from the same
initial weights (``problem.build(seed)``), with the same rule; the stacked engine is exact, not an
approximation (``tests/test_stacked_seeds.py`` checks that the two agree to float64 round-off).

A run's curve is a tidy table, one row per (seed, evaluation step), columns :data:`CURVE_COLUMNS`:
``train_loss`` is the mean mini-batch loss since the previous evaluation (NaN at step 0),
``valid_*``/``test_*`` the mean cross-entropy and accuracy of the model in eval mode (BatchNorm
with its running statistics) on the held-out sets, ``wall_s`` the seconds since the run began,
``diverged`` True on the row where a non-finite loss was first seen — that seed's last row; the
others go on. Rows are handed to ``on_eval`` as soon as they exist (a caller writes them to disk).

**Time to target** (``target=``): the validation accuracy of every seed is checked every
``target_every`` steps (default :attr:`Problem.target_every`: every step or every few, so that the
checks cost at most about half the training — the same ratio stacked or in a loop),
besides the evaluations; the first checked step at which a seed reaches the target, the
training time up to it (evaluations and checks excluded; a stacked group's time is shared by its
K seeds) and the best accuracy seen are handed to ``on_target`` as one row per seed (columns
:data:`TARGET_COLUMNS`). The held-out validation split is the one checked, as AlgoPerf's targets
are (Dahl et al., "Benchmarking Neural Network Training Algorithms", 2023): the test split stays
for the final numbers. The checks run in evaluation mode and change nothing in training.

Divergence costs no per-step synchronisation: losses accumulate on the device and are checked at
evaluations. The optimizer runs with ``nonfinite='ignore'``, so a diverging seed does not stop the
others (replicas share no reductions).
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import pandas as pd
import torch
from torch import Tensor

import sandbox

from ..problems import Problem
from .architecture_groups import architecture_param_groups
from .data_order import DataOrder, eval_steps
from .stacked import StackedModels, evaluate_model, evaluate_stacked

CURVE_COLUMNS = ("seed", "step", "epoch", "train_loss", "valid_loss", "valid_acc", "test_loss",
                 "test_acc", "wall_s", "diverged")
TARGET_COLUMNS = ("seed", "target", "target_split", "target_every", "steps_to_target",
                  "train_s_to_target", "best_acc", "best_step", "train_s")
# attach(optimizer, named_params, model, seeds) -> object with .detach(): e.g. a probe
Attach = Callable[[torch.optim.Optimizer, Mapping[str, Tensor], torch.nn.Module, Sequence[int]], Any]


class _Curves:
    """Running training loss per replica, evaluation rows, divergence bookkeeping."""

    def __init__(self, seeds: Sequence[int], problem: Problem, on_eval, start: float):
        self.seeds, self.problem, self.on_eval, self.start = list(seeds), problem, on_eval, start
        device = problem.train[0].device
        self.loss_sum = torch.zeros(len(seeds), dtype=torch.float64, device=device)
        self.count = 0
        self.alive = torch.ones(len(seeds), dtype=torch.bool)
        self.frames: list[pd.DataFrame] = []

    def add(self, losses: Tensor) -> None:
        self.loss_sum += losses.detach().to(torch.float64)
        self.count += 1

    def evaluate(self, step: int, evaluate: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]) -> bool:
        """Record the rows of ``step``; returns whether any seed is still alive."""
        vl, va = evaluate(*self.problem.valid)
        tl, ta = evaluate(*self.problem.test)
        train = self.loss_sum / self.count if self.count else torch.full_like(self.loss_sum, float("nan"))
        block = torch.stack([train, vl, va, tl, ta]).cpu()
        finite = torch.isfinite(block[[1, 3]]).all(dim=0) & (torch.isfinite(block[0]) | (self.count == 0))
        diverged = self.alive & ~finite
        rows = pd.DataFrame({
            "seed": self.seeds, "step": step, "epoch": step / self.problem.steps_per_epoch,
            "train_loss": block[0].numpy(), "valid_loss": block[1].numpy(),
            "valid_acc": block[2].numpy(), "test_loss": block[3].numpy(),
            "test_acc": block[4].numpy(), "wall_s": time.perf_counter() - self.start,
            "diverged": diverged.numpy()})[self.alive.numpy()]
        self.last_valid_acc = block[2]
        self.alive &= finite
        self.loss_sum.zero_()
        self.count = 0
        if len(rows):
            self.frames.append(rows)
            if self.on_eval is not None:
                self.on_eval(rows.reset_index(drop=True))
        return bool(self.alive.any())

    def frame(self) -> pd.DataFrame:
        if not self.frames:
            return pd.DataFrame(columns=CURVE_COLUMNS)
        return pd.concat(self.frames, ignore_index=True)


class _TargetTracker:
    """First checked step at which each seed's validation accuracy reaches ``target``; the
    training seconds up to it (the clock is stopped during evaluations and checks)."""

    def __init__(self, seeds: Sequence[int], target: float, every: int, device: torch.device):
        self.seeds, self.target, self.every = list(seeds), float(target), int(every)
        self.cuda = torch.device(device).type == "cuda"
        K = len(self.seeds)
        self.step = [math.nan] * K
        self.time = [math.nan] * K
        self.best = [-math.inf] * K
        self.best_step = [math.nan] * K
        self.train_s = 0.0
        self._resumed = None

    @property
    def active(self) -> bool:
        return any(math.isnan(s) for s in self.step)

    def resume(self) -> None:
        """Start (or restart after an evaluation) the training clock."""
        if self.cuda:
            torch.cuda.synchronize()
        self._resumed = time.perf_counter()

    def pause(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        if self._resumed is not None:
            self.train_s += time.perf_counter() - self._resumed
            self._resumed = None

    def update(self, step: int, acc: Tensor) -> None:
        for k, a in enumerate(acc.double().cpu().tolist()):
            if not math.isfinite(a):
                continue
            if a > self.best[k]:
                self.best[k], self.best_step[k] = a, step
            if math.isnan(self.step[k]) and a >= self.target:
                self.step[k], self.time[k] = step, self.train_s

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({
            "seed": self.seeds, "target": self.target, "target_split": "valid",
            "target_every": self.every, "steps_to_target": self.step,
            "train_s_to_target": self.time,
            "best_acc": [b if math.isfinite(b) else math.nan for b in self.best],
            "best_step": self.best_step, "train_s": self.train_s})


def total_steps(problem: Problem, epochs: float | None = None, steps: int | None = None) -> int:
    if steps is not None:
        if int(steps) < 1:
            raise ValueError(f"invalid steps={steps}: must be an integer >= 1")
        return int(steps)
    epochs = problem.epochs if epochs is None else epochs
    if not epochs > 0:
        raise ValueError(f"invalid epochs={epochs}: must be > 0")
    return max(1, round(epochs * problem.steps_per_epoch))


def train_seeds(problem: Problem, rule: str, seeds: Sequence[int], hp: Mapping[str, Any] | None = None,
                *, epochs: float | None = None, steps: int | None = None,
                eval_every: int | None = None, stacked: bool = True,
                on_eval: Optional[Callable[[pd.DataFrame], None]] = None,
                attach: Optional[Attach] = None, progress: bool | str = False,
                target: float | None = None, target_every: int | None = None,
                on_target: Optional[Callable[[pd.DataFrame], None]] = None) -> pd.DataFrame:
    """Train ``rule`` with hyperparameters ``hp`` (passed to ``sandbox.create`` as they are) on
    ``problem`` for each seed; return the curves (:data:`CURVE_COLUMNS`).

    ``epochs``/``steps``: the budget (default ``problem.epochs``); ``eval_every``: steps between
    evaluations (default ``problem.eval_every``, one epoch for most problems).
    ``stacked``: all seeds as one vmapped model (one optimizer,
    ``replica_dims=1``) or a loop over separate models. ``attach``: called once per model/stack
    with the optimizer before training (e.g. to attach a probe); its result's ``detach()`` is
    called at the end. ``progress``: a tqdm bar over steps (a string is its description).
    ``target``: a validation accuracy whose first crossing is tracked (module docstring), checked
    every ``target_every`` steps (default :attr:`Problem.target_every`); ``on_target`` gets one
    row per seed at the end of each model's run.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("train_seeds needs at least one seed")
    hp = dict(hp or {})
    total = total_steps(problem, epochs, steps)
    every = eval_every or problem.eval_every
    evals = set(eval_steps(total, every))
    if target is not None:
        if not 0 < float(target) <= 1:
            raise ValueError(f"invalid target={target!r}: a validation accuracy in (0, 1]")
        target_every = int(target_every or problem.target_every)
        if target_every < 1:
            raise ValueError(f"invalid target_every={target_every}: must be an integer >= 1")
    track = None if target is None else (float(target), target_every, on_target)
    bar = _bar(progress, total * (1 if stacked else len(seeds)))
    try:
        if stacked:
            return _train_stacked(problem, rule, hp, seeds, total, evals, on_eval, attach, bar, track)
        frames = [_train_single(problem, rule, hp, s, total, evals, on_eval, attach, bar, track)
                  for s in seeds]
        return pd.concat(frames, ignore_index=True)
    finally:
        if bar is not None:
            bar.close()


def _bar(progress, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=progress if isinstance(progress, str) else None, unit="step",
                leave=False)


def _tracker(track, seeds, problem):
    if track is None:
        return None
    return _TargetTracker(seeds, track[0], track[1], problem.train[0].device), track[2]


def _train_stacked(problem, rule, hp, seeds, total, evals, on_eval, attach, bar, track=None) -> pd.DataFrame:
    template = problem.build(seeds[0])
    stack = StackedModels([problem.build(s) for s in seeds])
    groups = architecture_param_groups(rule, hp, stack.params, problem, template, replica_dims=1)
    opt = sandbox.create(rule, groups, nonfinite="ignore", **hp)
    hook = attach(opt, stack.params, template, seeds) if attach else None
    order = DataOrder(len(problem.train[1]), problem.batch_size, seeds, problem.train[0].device)
    curves = _Curves(seeds, problem, on_eval, time.perf_counter())
    return _loop(curves, lambda xs, ys: evaluate_stacked(stack, xs, ys),
                 lambda t: stacked_step(stack, opt, problem, order.batch(t)), total, evals, hook, bar,
                 _tracker(track, seeds, problem))


def _train_single(problem, rule, hp, seed, total, evals, on_eval, attach, bar, track=None) -> pd.DataFrame:
    model = problem.build(seed)
    groups = architecture_param_groups(rule, hp, dict(model.named_parameters()), problem, model)
    opt = sandbox.create(rule, groups, nonfinite="ignore", **hp)
    hook = attach(opt, dict(model.named_parameters()), model, [seed]) if attach else None
    order = DataOrder(len(problem.train[1]), problem.batch_size, [seed], problem.train[0].device)
    curves = _Curves([seed], problem, on_eval, time.perf_counter())
    return _loop(curves, lambda xs, ys: evaluate_model(model, xs, ys),
                 lambda t: single_step(model, opt, problem, order.batch(t)[0]).reshape(1),
                 total, evals, hook, bar, _tracker(track, [seed], problem))


def _loop(curves, evaluate, step, total, evals, hook, bar, tracking=None) -> pd.DataFrame:
    """Train ``total`` steps (``step(t)`` returns the per-seed losses), evaluating at ``evals``
    and checking the target (``tracking``: a tracker and its callback) every ``every`` steps;
    stops early when every seed has diverged."""
    tracker, on_target = tracking if tracking is not None else (None, None)
    alive, last = curves.evaluate(0, evaluate), 0
    if tracker is not None:
        tracker.update(0, curves.last_valid_acc)
        tracker.resume()
    try:
        for t in range(total):
            if not alive:
                break
            curves.add(step(t))
            evaluating = t + 1 in evals
            checking = tracker is not None and tracker.active and (t + 1) % tracker.every == 0
            if tracker is not None and (evaluating or checking):
                tracker.pause()
            if evaluating:
                alive = curves.evaluate(t + 1, evaluate)
                last = _advance(bar, last, t + 1)
                if tracker is not None:
                    tracker.update(t + 1, curves.last_valid_acc)
            elif checking:
                tracker.update(t + 1, evaluate(*curves.problem.valid)[1])
            if tracker is not None and (evaluating or checking):
                tracker.resume()
    finally:
        if hook is not None:
            hook.detach()
    if tracker is not None:
        tracker.pause()
        if on_target is not None:
            on_target(tracker.frame())
    _advance(bar, last, total)
    return curves.frame()


def stacked_step(stack: StackedModels, opt, problem: Problem, idx: Tensor) -> Tensor:
    """One training step of K stacked seeds on batches ``idx`` (K, B); returns the (K,) losses.
    The summed loss's gradient w.r.t. replica k's parameters is that of replica k's own loss."""
    x, y = problem.train
    losses = problem.replica_losses(stack(x[idx]), y[idx])
    opt.zero_grad(set_to_none=True)
    losses.sum().backward()
    opt.step()
    return losses.detach()


def single_step(model: torch.nn.Module, opt, problem: Problem, idx: Tensor) -> Tensor:
    """One training step of one model on batch ``idx`` (B,); returns the loss."""
    x, y = problem.train
    loss = problem.loss(model(x[idx]), y[idx])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def _advance(bar, last: int, now: int) -> int:
    if bar is not None and now > last:
        bar.update(now - last)
    return max(last, now)

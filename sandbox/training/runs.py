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

Divergence costs no per-step synchronisation: losses accumulate on the device and are checked at
evaluations. The optimizer runs with ``nonfinite='ignore'``, so a diverging seed does not stop the
others (replicas share no reductions).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Optional, Sequence

import pandas as pd
import torch
from torch import Tensor

import sandbox

from ..problems import Problem
from .data_order import DataOrder, eval_steps
from .stacked import StackedModels, evaluate_model, evaluate_stacked

CURVE_COLUMNS = ("seed", "step", "epoch", "train_loss", "valid_loss", "valid_acc", "test_loss",
                 "test_acc", "wall_s", "diverged")
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
                attach: Optional[Attach] = None, progress: bool | str = False) -> pd.DataFrame:
    """Train ``rule`` with hyperparameters ``hp`` (passed to ``sandbox.create`` as they are) on
    ``problem`` for each seed; return the curves (:data:`CURVE_COLUMNS`).

    ``epochs``/``steps``: the budget (default ``problem.epochs``); ``eval_every``: steps between
    evaluations (default ``problem.eval_every``, one epoch for most problems).
    ``stacked``: all seeds as one vmapped model (one optimizer,
    ``replica_dims=1``) or a loop over separate models. ``attach``: called once per model/stack
    with the optimizer before training (e.g. to attach a probe); its result's ``detach()`` is
    called at the end. ``progress``: a tqdm bar over steps (a string is its description).
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("train_seeds needs at least one seed")
    hp = dict(hp or {})
    total = total_steps(problem, epochs, steps)
    evals = set(eval_steps(total, eval_every or problem.eval_every))
    bar = _bar(progress, total * (1 if stacked else len(seeds)))
    try:
        if stacked:
            return _train_stacked(problem, rule, hp, seeds, total, evals, on_eval, attach, bar)
        frames = [_train_single(problem, rule, hp, s, total, evals, on_eval, attach, bar) for s in seeds]
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


def _train_stacked(problem, rule, hp, seeds, total, evals, on_eval, attach, bar) -> pd.DataFrame:
    template = problem.build(seeds[0])
    stack = StackedModels([problem.build(s) for s in seeds])
    opt = sandbox.create(rule, stack.param_groups(), nonfinite="ignore", **hp)
    hook = attach(opt, stack.params, template, seeds) if attach else None
    order = DataOrder(len(problem.train[1]), problem.batch_size, seeds, problem.train[0].device)
    curves = _Curves(seeds, problem, on_eval, time.perf_counter())
    return _loop(curves, lambda xs, ys: evaluate_stacked(stack, xs, ys),
                 lambda t: stacked_step(stack, opt, problem, order.batch(t)), total, evals, hook, bar)


def _train_single(problem, rule, hp, seed, total, evals, on_eval, attach, bar) -> pd.DataFrame:
    model = problem.build(seed)
    opt = sandbox.create(rule, model.parameters(), nonfinite="ignore", **hp)
    hook = attach(opt, dict(model.named_parameters()), model, [seed]) if attach else None
    order = DataOrder(len(problem.train[1]), problem.batch_size, [seed], problem.train[0].device)
    curves = _Curves([seed], problem, on_eval, time.perf_counter())
    return _loop(curves, lambda xs, ys: evaluate_model(model, xs, ys),
                 lambda t: single_step(model, opt, problem, order.batch(t)[0]).reshape(1),
                 total, evals, hook, bar)


def _loop(curves, evaluate, step, total, evals, hook, bar) -> pd.DataFrame:
    """Train ``total`` steps (``step(t)`` returns the per-seed losses), evaluating at ``evals``;
    stops early when every seed has diverged."""
    alive, last = curves.evaluate(0, evaluate), 0
    try:
        for t in range(total):
            if not alive:
                break
            curves.add(step(t))
            if t + 1 in evals:
                alive = curves.evaluate(t + 1, evaluate)
                last = _advance(bar, last, t + 1)
    finally:
        if hook is not None:
            hook.detach()
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

"""Speed of K seeds trained as ONE stacked model against a loop over K separate models.

Both engines run the same training step (:func:`sandbox.training.stacked_step` /
:func:`sandbox.training.single_step`: forward, backward, optimizer step) on the same batches, K = 16
seeds of ``digits-bnmlp`` by default. Blocks of steps of the two engines are interleaved and
repeated, and each engine's time per step is the median over its blocks, so both see the same
machine load (on a shared CPU the load changes from second to second): the ratio is measured in
one run. The goal (issue 5) is a speed-up >= 3 at K = 16 on CPU.

    python -m sandbox.benchmarks.stacked_seeds [--quick] [--device cuda] [--threads 1]
        [--problem digits-bnmlp,teacher-student] [--engine auto|native|vmap]
"""
from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import sandbox
from sandbox.tidy_log import TidyLog

GOAL = 3.0
COLUMNS = ("benchmark", "problem", "rule", "K", "engine", "device", "threads", "steps_timed",
           "stacked_ms_per_step", "loop_ms_per_step", "speedup", "goal", "meets_goal")


@contextmanager
def _threads(n: int | None):
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(old)


def _timed(fn, steps: int, device: torch.device) -> float:
    """Seconds per step of ``fn(step)`` over ``steps`` steps (device synchronised)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for t in range(steps):
        fn(t)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def measure(problem_name: str, rule: str, K: int, device: str, block: int, repeats: int,
            engine: str = "auto") -> dict:
    """Interleaved timing of the stacked model (``engine``: see
    :class:`sandbox.training.StackedModels`) and the loop for one rule; one result row."""
    from sandbox.problems import get_problem
    from sandbox.training import (DataOrder, StackedModels, resolve_hyperparameters, single_step,
                                  stacked_step)

    problem = get_problem(problem_name, device=device)
    hp, _ = resolve_hyperparameters(rule, problem)
    seeds = list(range(K))
    dev = problem.train[0].device
    order = DataOrder(len(problem.train[1]), problem.batch_size, seeds, dev)
    stack = StackedModels([problem.build(s) for s in seeds], engine=engine)
    s_opt = sandbox.create(rule, stack.param_groups(), nonfinite="ignore", **hp)
    models = [problem.build(s) for s in seeds]
    opts = [sandbox.create(rule, m.parameters(), nonfinite="ignore", **hp) for m in models]

    def run_stacked(t):
        stacked_step(stack, s_opt, problem, order.batch(t))

    def run_loop(t):
        idx = order.batch(t)
        for k in range(K):  # the baseline: a Python loop over the K models
            single_step(models[k], opts[k], problem, idx[k])

    _timed(run_stacked, 3, dev)  # warm-up (first vmap call, allocator, state creation)
    _timed(run_loop, 3, dev)
    times = {"stacked": [], "loop": []}
    for _ in range(repeats):
        times["stacked"].append(_timed(run_stacked, block, dev))
        times["loop"].append(_timed(run_loop, block, dev))
    s, loop = float(np.median(times["stacked"])), float(np.median(times["loop"]))
    return {"benchmark": "stacked_seeds", "problem": problem_name, "rule": rule, "K": K,
            "engine": stack.engine, "device": str(dev), "threads": torch.get_num_threads(), "steps_timed": block * repeats,
            "stacked_ms_per_step": 1e3 * s, "loop_ms_per_step": 1e3 * loop,
            "speedup": loop / s, "goal": GOAL, "meets_goal": loop / s >= GOAL}


def stacked_seeds_benchmark(quick: bool = False, device: str = "cpu", K: int = 16,
                            rules: tuple[str, ...] | None = None, problem: str | tuple[str, ...] = "digits-bnmlp",
                            threads: int | None = None, out: str | Path | None = None,
                            progress: bool = False, engine: str = "auto") -> pd.DataFrame:
    """One row per rule (columns :data:`COLUMNS`): ms per step of K stacked seeds and of a loop
    over K models, and their ratio. ``quick``: one rule (adamp), short blocks (a few seconds).
    ``threads``: torch CPU threads during the benchmark (restored after). ``out``: a CSV path
    rows are appended to as they are measured. ``problem``: one name or several (one row per
    problem and rule); the speed-up depends on how much of a step is dispatch rather than
    arithmetic, so it differs between problems. ``engine``: how the stacked model runs
    (``auto``, ``native`` or ``vmap``; the row says which ran)."""
    rules = rules or (("adamp",) if quick else ("sgd", "adamp", "adai"))
    block, repeats = (5, 3) if quick else (10, 7)
    rows = []
    with _threads(threads):
        problems = (problem,) if isinstance(problem, str) else tuple(problem)
        it = [(name, rule) for name in problems for rule in rules]
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=f"stacked seeds K={K}", unit="run")
        log = TidyLog(out, fresh=False) if out is not None else None
        for name, rule in it:
            row = measure(name, rule, K, device, block, repeats, engine)
            rows.append(row)
            if log is not None:
                log.append(pd.DataFrame([row]))
    return pd.DataFrame(rows, columns=COLUMNS)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandbox.benchmarks.stacked_seeds", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("-K", type=int, default=16)
    p.add_argument("--problem", default="digits-bnmlp",
                   help="problem(s), comma-separated (default digits-bnmlp, the goal's problem)")
    p.add_argument("--engine", default="auto", choices=("auto", "native", "vmap"),
                   help="how the stacked model runs (default auto: native layers where the model allows)")
    p.add_argument("--out", default="results/bench/stacked_seeds.csv")
    a = p.parse_args(argv)
    from sandbox.problems import get_problem  # unknown names fail here, before any timing

    names = tuple(x.strip() for x in a.problem.split(",") if x.strip())
    try:
        if not names:
            raise ValueError("--problem is empty: name at least one problem")
        for name in names:
            get_problem(name, device=a.device)
    except (ValueError, KeyError) as e:
        p.exit(2, f"{p.prog}: error: {e.args[0] if e.args else e}\n")
    try:
        df = stacked_seeds_benchmark(a.quick, a.device, a.K, problem=names, threads=a.threads,
                                     out=a.out, progress=True, engine=a.engine)
    except ValueError as e:  # --engine native on a model outside the native layer set
        p.exit(2, f"{p.prog}: error: {e}\n")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Replica batching: trajectory-steps per second, one ``(R, d)`` tensor against a Python loop.

Workload: the d = 64 noise-driven toy (:class:`~sandbox.toys.NoiseDrivenToy`, gradient
g = Π⊥(ξ)/‖w‖), one trajectory-step = draw the gradient + one optimizer step. Engines:

- ``batched``: R = 10,000 replicas in one tensor, ``replica_dims=1``, one optimizer;
- ``loop``: separate single-replica toys, each with its own optimizer, stepped in a Python loop
  (the way one would run many trajectories without replica support). Timed on ``loop_replicas``
  of them (the loop's cost per trajectory-step does not depend on how many there are).

The weight has item shape (1, 64) so that SGDP/AdamP's projection runs (it skips vectors). Blocks
of the two engines are interleaved and each engine's rate is the median over its blocks, so both
see the same machine load: the ratio is measured in one run. Goal (issue 3): ratio ≥ 50.

    python -m sandbox.benchmarks.replicas [--quick] [--device cuda] [--threads N] [--out CSV]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import sandbox
from sandbox.toys import NoiseDrivenToy

GOAL = 50.0
RULES = {"sgdp": {"lr": 0.1, "momentum": 0.9}, "adamp": {"lr": 1e-3}}
COLUMNS = ("benchmark", "problem", "rule", "replicas", "device", "dtype", "threads", "impl", "blocks",
           "batched_traj_steps_per_s", "loop_traj_steps_per_s", "speedup", "goal", "meets_goal")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Batched:
    def __init__(self, rule, replicas, device, dtype, seed):
        self.toy = NoiseDrivenToy(64, replicas, seed=seed, device=device, dtype=dtype, shape=(1, 64))
        self.opt = sandbox.create(rule, self.toy.param_groups(), **RULES[rule])
        self.n = replicas

    def step(self):
        self.toy.fill_grad()
        self.opt.step()


class _Loop:
    def __init__(self, rule, replicas, device, dtype, seed):
        self.toys = [NoiseDrivenToy(64, 1, seed=seed + i, device=device, dtype=dtype, shape=(1, 64))
                     for i in range(replicas)]
        self.opts = [sandbox.create(rule, t.param_groups(), **RULES[rule]) for t in self.toys]
        self.n = replicas

    def step(self):
        for toy, opt in zip(self.toys, self.opts):
            toy.fill_grad()
            opt.step()


def _rate(engine, steps: int, device) -> float:
    """Trajectory-steps per second over ``steps`` steps of ``engine``."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        engine.step()
    _sync(device)
    return engine.n * steps / (time.perf_counter() - t0)


def replica_benchmark(quick: bool = False, device: str | torch.device = "cpu",
                      dtype: torch.dtype = torch.float32, replicas: int = 10_000,
                      loop_replicas: int | None = None, blocks: int | None = None,
                      threads: int | None = 1) -> pd.DataFrame:
    """One row per rule (SGDP, AdamP): trajectory-steps/s of both engines and their ratio.

    ``quick``: 3 blocks, a loop over 100 toys, 2 batched steps per block (about 10 s on 2 CPU
    cores); otherwise 5 blocks, 300 toys, 5 steps. ``threads``: torch's CPU intra-op threads
    during the run (default 1, restored afterwards; None keeps torch's setting). On a shared
    machine more threads make both engines erratic (thread hand-offs wait on busy cores).
    """
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        return _benchmark(quick, torch.device(device), dtype, replicas, loop_replicas, blocks)
    finally:
        torch.set_num_threads(old)


def _benchmark(quick, device, dtype, replicas, loop_replicas, blocks) -> pd.DataFrame:
    blocks = blocks or (3 if quick else 5)
    loop_n = loop_replicas or (100 if quick else 300)
    steps_batched, steps_loop = (2, 2) if quick else (5, 3)
    rows = []
    for rule in RULES:
        batched = _Batched(rule, replicas, device, dtype, seed=0)
        loop = _Loop(rule, loop_n, device, dtype, seed=1)
        batched.step()  # warm-up: state allocation, first-call overheads
        loop.step()
        rb, rl = [], []
        for _ in range(blocks):
            rb.append(_rate(batched, steps_batched, device))
            rl.append(_rate(loop, steps_loop, device))
        b, lo = float(np.median(rb)), float(np.median(rl))
        rows.append({"benchmark": "replicas", "problem": "noise-driven toy d=64 (shape 1x64)",
                     "rule": rule, "replicas": replicas, "device": str(device),
                     "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
                     "impl": getattr(batched.opt, "last_impl", "reference"),
                     "blocks": blocks, "batched_traj_steps_per_s": b,
                     "loop_traj_steps_per_s": lo, "speedup": b / lo, "goal": GOAL,
                     "meets_goal": b / lo >= GOAL})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandbox.benchmarks.replicas", description=__doc__
                                .split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--out", type=Path, default=Path("results/bench/replicas.csv"))
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available here")
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    table = replica_benchmark(args.quick, args.device, getattr(torch, args.dtype),
                              threads=args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda x: f"{x:,.4g}"))
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Optimizer step time, every contender side by side in the same run.

Protocol (one tensor set): every contender's optimizer is built on the SAME parameter tensors
(each keeps its own state) and warmed up by two steps. Then, for each repeat, the contenders are
timed in a shuffled order, one step each; before every timed step the parameters and gradients
are restored (outside the timer), so every step sees the same tangential gradients and the
projection keeps firing. A ratio is taken within a repeat (contender / torch's fused AdamW of the
same repeat), so slow drifts of the machine's load cancel; the report gives medians over repeats
with the interquartile range. CUDA steps are bracketed by ``torch.cuda.synchronize``.
"""
from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .contenders import BASELINE, SGD_BASELINE, Contender
from .tensor_sets import TensorSet

RAW_COLUMNS = ("set", "contender", "source", "rule", "repeat", "ms", "ratio_adamw_fused",
               "ratio_sgd_fused")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(tset: TensorSet, cands: list[Contender], warmup: int = 2) -> tuple[dict, dict]:
    """{name: warmed-up optimizer}, {name: error} for contenders that fail on this set."""
    grads = [p.grad.detach().clone() for p in tset.params]
    opts, failed = {}, {}
    for c in cands:
        try:
            opt = c.make(tset.params)
            for _ in range(warmup):
                _restore(tset, grads)
                opt.step()
            opts[c.name] = opt
        except Exception as e:  # an implementation that cannot run here is reported, not fatal
            failed[c.name] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
    _restore(tset, grads)
    return opts, failed


def _restore(tset: TensorSet, grads: list) -> None:
    tset.reset()
    with torch.no_grad():
        torch._foreach_copy_([p.grad for p in tset.params], grads)


def time_steps(tset: TensorSet, cands: list[Contender], opts: dict, repeats: int,
               device: torch.device, raw_csv: Path | None = None, progress: bool = False,
               seed: int = 0) -> pd.DataFrame:
    """One row per (contender, repeat): ms of one step and the ratios to the two baselines."""
    grads = [p.grad.detach().clone() for p in tset.params]
    live = [c for c in cands if c.name in opts]
    rng = random.Random(seed)
    it = range(repeats)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"steps: {tset.name}", unit="repeat", leave=False)
    frames = []
    for r in it:
        order = live[:]
        rng.shuffle(order)
        ms = {}
        for c in order:
            _restore(tset, grads)
            _sync(device)
            t0 = time.perf_counter()
            opts[c.name].step()
            _sync(device)
            ms[c.name] = (time.perf_counter() - t0) * 1e3
        base, sgd = ms.get(BASELINE, np.nan), ms.get(SGD_BASELINE, np.nan)
        frame = pd.DataFrame([{"set": tset.name, "contender": c.name, "source": c.source,
                               "rule": c.rule, "repeat": r, "ms": ms[c.name],
                               "ratio_adamw_fused": ms[c.name] / base,
                               "ratio_sgd_fused": ms[c.name] / sgd} for c in live],
                             columns=list(RAW_COLUMNS))
        frames.append(frame)
        if raw_csv is not None:
            frame.to_csv(raw_csv, mode="a", header=not raw_csv.exists(), index=False)
    _restore(tset, grads)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RAW_COLUMNS)


def summarise(raw: pd.DataFrame) -> pd.DataFrame:
    """Median and quartiles over repeats, per (set, contender)."""
    def q(p):
        return lambda x: float(np.nanquantile(x, p)) if len(x) else np.nan

    out = raw.groupby(["set", "contender", "source", "rule"], sort=False).agg(
        repeats=("ms", "size"),
        ms_median=("ms", "median"), ms_q25=("ms", q(0.25)), ms_q75=("ms", q(0.75)),
        ratio=("ratio_adamw_fused", "median"), ratio_q25=("ratio_adamw_fused", q(0.25)),
        ratio_q75=("ratio_adamw_fused", q(0.75)),
        ratio_sgd=("ratio_sgd_fused", "median"), ratio_sgd_q25=("ratio_sgd_fused", q(0.25)),
        ratio_sgd_q75=("ratio_sgd_fused", q(0.75)),
    ).reset_index()
    return out

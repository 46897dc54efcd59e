r"""Notebook 05's bfloat16 runs: the noise-driven toy in bfloat16 against float32.

The weights and every optimizer state are stored in the toy's dtype (the sandbox keeps a
parameter's state in the parameter's dtype). Besides Δ_t and ‖w_t‖
(:func:`sandbox.experiments.effective_step.run_noise_toy`), rules with a second moment record
``bv`` (mean B·v, :func:`sandbox.experiments.effective_step.preconditioner_probe`) and
``v_decreased`` (the fraction of v's elements that went DOWN since the previous record), the
quantities of the rounding predictions in :mod:`theory.lowprecision`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from sandbox.experiments.effective_step import preconditioner_probe, run_noise_toy
from sandbox.experiments.run_cache import cached

from .toy_runs import record_schedule

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
CACHE_VERSION = 1


def v_decrease_probe():
    """A probe (opt, w) → per replica, the fraction of ``exp_avg_sq`` elements below their value
    at the previous call (NaN at the first call; zeros when the state has no such key)."""
    last = {}

    def probe(opt, w):
        v = opt.state[w].get("exp_avg_sq")
        if v is None:
            return torch.zeros(w.shape[0], dtype=torch.float64)
        v = v.detach().to(torch.float64).reshape(v.shape[0], -1)
        prev = last.get("v")
        last["v"] = v.clone()
        if prev is None:
            return torch.full((v.shape[0],), float("nan"), dtype=torch.float64)
        return (v < prev).to(torch.float64).mean(dim=-1)

    return probe


def precision_runs(configs, steps: int, replicas: int = 64, d: int = 64, *, out=None,
                   seed: int = 0, device: str = "cpu", dtypes=("float32", "bfloat16"),
                   progress=None) -> pd.DataFrame:
    """Each config (``rule``, ``label``, ``sandbox.create`` keywords) at each dtype, same seed.

    Returns the tidy rows of :func:`run_noise_toy` (quantities norm, delta, radial, tangential
    and, for rules with a second moment, bv and v_decreased) with ``label`` and ``dtype``
    columns. ``out``: cache folder (a rerun resumes).
    """
    bad = [x for x in dtypes if x not in DTYPES]
    if bad:
        raise ValueError(f"unknown dtype(s) {bad}: expected some of {list(DTYPES)}")
    frames = []
    jobs = [(dict(c), x) for c in configs for x in dtypes]
    for cfg, name in (progress(jobs, desc="runs") if progress else jobs):
        rule, label = cfg.pop("rule"), cfg.pop("label", None)
        label = label or rule

        def compute(rule=rule, cfg=cfg, name=name):
            probes = None
            if rule.startswith(("rf", "adam")):
                probes = {"bv": preconditioner_probe_safe, "v_decreased": v_decrease_probe()}
            return run_noise_toy(rule, steps, replicas, d, seed=seed, dtype=DTYPES[name],
                                 device=device, schedule=record_schedule(steps), probes=probes,
                                 **cfg)

        if out is None:
            table = compute()
        else:
            key = {"v": CACHE_VERSION, "rule": rule, "hp": cfg, "dtype": name, "steps": steps,
                   "replicas": replicas, "d": d, "seed": seed, "device": str(device)}
            table = cached(out, key, compute)
        frames.append(table.assign(label=label, dtype=name))
    return pd.concat(frames, ignore_index=True)


def preconditioner_probe_safe(opt, w):
    """Mean B·v per replica (:func:`preconditioner_probe`); Adam rules (no ``batch_size``)
    report the mean v instead (B = 1)."""
    if "batch_size" in opt.param_groups[0]:
        return preconditioner_probe(opt, w)
    v = opt.state[w]["exp_avg_sq"]
    return v.reshape(v.shape[0], -1).to(torch.float64).mean(dim=-1)


def paired(table: pd.DataFrame, quantity: str, column: str = "rms") -> pd.DataFrame:
    """One row per (label, step): the quantity in float32 and in bfloat16 and their ratio."""
    part = table[table["quantity"] == quantity]
    wide = part.pivot_table(index=["label", "step"], columns="dtype", values=column).reset_index()
    wide["ratio"] = wide["bfloat16"] / wide["float32"]
    return wide.sort_values(["label", "step"]).reset_index(drop=True)


def predict_bf16(table: pd.DataFrame, label: str, d: int, beta2: float | None = None,
                 elements: int = 4096, samples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The rounding model's bf16/fp32 ratios for one run pair, given each run's measured norms.

    A rule of homogeneity k with a second moment v takes, on a scale-invariant weight, an angular
    step Δ ∝ r^{−(k+1)} (E[g²]/v)^p, p = 1 (root-free), 1/2 (Adam), 0 (no v). The gradient scale
    each run saw is g ∝ 1/r_t (its own measured norm, interpolated to every step), so the bf16 EMA
    model (:func:`theory.lowprecision.bf16_ema_trace`) against the float32 one gives the
    lag factor L_t = (v/E[g²])_bf16 / (v/E[g²])_fp32 and the v ratio L_t (r_fp32/r_bf16)². The
    nominal bf16 step is Δ_fp32 (r_fp32/r_bf16)^{k+1} / L_t^p, of which the weights' rounding keeps
    ρ(Δ) (:func:`theory.lowprecision.bf16_step_retention`).
    ``beta2``: the run's second-moment coefficient (default: the rule's, 1 − lr_cov for
    root-free RMSProp). Returns per recorded step: ``v_ratio`` (NaN for rules without v) and
    ``delta_ratio`` (predicted bf16/fp32).
    Conditional on the measured norms (the bf16 run grows more slowly, so its g falls less and
    its v lags less than a float32-based growth would say).
    """
    import sandbox
    from theory.lowprecision import bf16_ema_trace, bf16_step_retention

    part = table[table["label"] == label]
    rule = str(part["rule"].iloc[0])
    spec = sandbox.info(rule)
    k = float(spec.homogeneity)
    power = {-1: 1.0, 0: 0.5}.get(int(k), 0.0) if spec.momentum_kind != "adaptive" else 0.0
    full = spec.defaults
    if beta2 is None and power > 0:
        beta2 = 1.0 - float(full["lr_cov"]) if "lr_cov" in full else float(full["betas"][1])
    steps = int(part["step"].max()) + 1
    grid = np.arange(steps)
    r = {}
    for name in ("float32", "bfloat16"):
        n = part[(part["dtype"] == name) & (part["quantity"] == "norm")].sort_values("step")
        r[name] = np.interp(grid, n["step"], n["rms"])
    lag = np.ones(steps)
    if power > 0:
        lag = (bf16_ema_trace(beta2, steps, elements, g_scale=1 / r["bfloat16"], seed=seed)
               / bf16_ema_trace(beta2, steps, elements, g_scale=1 / r["float32"], seed=seed,
                                bf16=False))
    delta = paired(part, "delta")
    s = delta["step"].to_numpy()
    radius = r["float32"][s] / r["bfloat16"][s]
    nominal = delta["float32"].to_numpy() * radius ** (k + 1) / lag[s] ** power
    kept = bf16_step_retention(nominal, d=d, samples=samples, seed=seed) * nominal
    v_ratio = lag[s] * radius ** 2 if power > 0 else np.full(len(s), np.nan)
    return pd.DataFrame({"label": label, "step": s, "v_ratio": v_ratio,
                         "delta_ratio": kept / delta["float32"].to_numpy()})


def late_mean(frame: pd.DataFrame, column: str, fraction: float = 0.5) -> float:
    """Mean of ``column`` over the steps >= ``fraction`` × last step."""
    late = frame[frame["step"] >= fraction * frame["step"].max()]
    return float(np.nanmean(late[column]))

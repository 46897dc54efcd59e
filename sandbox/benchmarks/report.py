"""``python -m sandbox bench``: one report of step time, memory, bandwidth and the other issues'
benchmarks, as CSV tables, a terminal table and one seaborn figure.

Sections, each saved under ``out/`` as soon as it is measured (a rerun reuses the CSVs it finds;
``fresh=True`` measures again):

- ``bandwidth.csv``: the machine's copy bandwidth (:mod:`.bandwidth`);
- ``steps_raw.csv``: every timed step (:mod:`.steps`), ``steps_<set>.csv``: per contender the
  median step time with quartiles, ratios to torch's fused AdamW and fused SGD measured side by
  side, achieved bandwidth, peak extra memory (:mod:`.memory`);
- ``goals.csv``: the optimizer core's goals against the measurements;
- ``replicas.csv``, ``stacked_seeds.csv``, ``probes.csv``: the benchmarks of issues 3 and 5 when
  their modules are present ("not available" otherwise);
- ``bench.png``: step time relative to torch's fused AdamW, per tensor set.
"""
from __future__ import annotations

import importlib
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from . import bandwidth as bw
from .contenders import BASELINE, SGD_BASELINE, contenders
from .memory import peak_extra_bytes
from .steps import build, summarise, time_steps
from .tensor_sets import SETS, make_set

OTHER = {  # section: (module, function)
    "replicas": ("sandbox.benchmarks.replicas", "replica_benchmark"),
    "stacked_seeds": ("sandbox.benchmarks.stacked_seeds", "stacked_seeds_benchmark"),
    "probes": ("sandbox.benchmarks.probes", "probe_overhead_benchmark"),
}
SECTIONS = ("bandwidth", "steps", "replicas", "stacked_seeds", "probes")
# (goal, numerator, denominator, target, sets it applies to) — the optimizer core's goals
CPU_GOALS = [
    ("sandbox adamw / torch AdamW (fused)", "sandbox adamw", BASELINE, 1.1, ("resnet", "small")),
    ("sandbox adamp / torch AdamW (fused)", "sandbox adamp", BASELINE, 1.5, ("resnet",)),
    ("sandbox adamp / torch AdamW (fused)", "sandbox adamp", BASELINE, 2.0, ("small",)),
    ("sandbox sgdp / torch SGD momentum (fused)", "sandbox sgdp", SGD_BASELINE, 1.6, ("resnet",)),
    ("sandbox adai / torch AdamW (fused)", "sandbox adai", BASELINE, 2.0, ("resnet",)),
    ("sandbox rfadamw / torch AdamW (fused)", "sandbox rfadamw", BASELINE, 1.2, ("resnet",)),
]
MEMORY_GOAL = 0.05  # peak extra memory of a step / the largest parameter
GPU_GOALS = [("sandbox adamp / torch AdamW (fused)", "sandbox adamp", BASELINE, 1.5, ("resnet", "small"))]
SPEEDUP_GOAL = ("official AdamP / sandbox adamp (speed-up)", "official AdamP (adamp 0.3.0)",
                "sandbox adamp", 5.0)


@dataclass
class BenchConfig:
    quick: bool = False
    device: str = "cpu"
    out: Path = Path("results/bench")
    repeats: int | None = None
    threads: int | None = None
    sets: tuple[str, ...] = SETS
    sections: tuple[str, ...] = SECTIONS
    fresh: bool = False
    progress: bool = True
    pin_malloc: bool = True  # see pin_malloc()
    log: Callable[[str], None] = print


def pin_malloc() -> str:
    """Pin glibc's mmap threshold at 32 MiB (and stop heap trimming) for this process.

    By default glibc serves large blocks with fresh ``mmap`` pages until a free raises its
    dynamic threshold, so implementations that allocate whole-tensor temporaries every step (the
    official AdamP, torch's foreach kernels) run in a fast or a page-faulting slow mode depending
    on the allocation history: 2× apart between otherwise identical runs of this benchmark. Pinned,
    every implementation sees a warm heap. Same effect as the environment variables
    ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824``."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        # M_MMAP_THRESHOLD = -3, M_TRIM_THRESHOLD = -1 (malloc.h)
        ok = libc.mallopt(-3, 32 << 20) == 1 and libc.mallopt(-1, 1 << 30) == 1
    except (OSError, AttributeError):
        ok = False
    return "glibc mmap threshold pinned at 32 MiB" if ok else "allocator defaults"


@contextmanager
def cpu_threads(n: int | None):
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _section(path: Path, cfg: BenchConfig, measure: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    if path.exists() and not cfg.fresh:
        cfg.log(f"  reusing {path} (fresh=True to measure again)")
        return pd.read_csv(path)
    t0 = time.perf_counter()
    df = measure()
    df.to_csv(path, index=False)
    cfg.log(f"  {path.name}: {time.perf_counter() - t0:.0f} s")
    return df


def run_bench(cfg: BenchConfig) -> dict[str, pd.DataFrame]:
    """Measure every section of ``cfg`` and save it; returns the tables by section name."""
    device = torch.device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.fresh:
        (out / "steps_raw.csv").unlink(missing_ok=True)
    res: dict[str, pd.DataFrame] = {}
    malloc = pin_malloc() if cfg.pin_malloc else "allocator defaults"
    with cpu_threads(cfg.threads):
        env = {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
               "quick": cfg.quick, "malloc": malloc}
        cfg.log(f"bench: {env}")
        if "bandwidth" in cfg.sections or "steps" in cfg.sections:
            res["bandwidth"] = _section(out / "bandwidth.csv", cfg, lambda: pd.DataFrame(
                [{**env, **bw.copy_bandwidth(device, repeats=5 if cfg.quick else 11)}]))
        if "steps" in cfg.sections:
            bwt = res["bandwidth"].iloc[0]
            ref_bw = (float(bwt["copy_GBps"]), float(bwt.get("inplace_GBps", np.nan)))
            tables = [_section(out / f"steps_{name}.csv", cfg,
                               lambda name=name: _steps(name, cfg, device, ref_bw, env))
                      for name in cfg.sets]
            res["steps"] = pd.concat(tables, ignore_index=True)
            res["goals"] = goals(res["steps"], out / "steps_raw.csv", device)
            res["goals"].to_csv(out / "goals.csv", index=False)
        for section, (module, fn) in OTHER.items():
            if section in cfg.sections:
                res[section] = _section(out / f"{section}.csv", cfg,
                                        lambda m=module, f=fn: _other(m, f, cfg))
    if "steps" in cfg.sections and (out / "steps_raw.csv").exists():
        res["figure"] = pd.DataFrame([{"path": str(figure(out / "steps_raw.csv", out / "bench.png"))}])
    return res


def _steps(name: str, cfg: BenchConfig, device: torch.device, ref_bw: tuple[float, float],
           env: dict) -> pd.DataFrame:
    tset = make_set(name, quick=cfg.quick, device=device)
    cfg.log(f"  {tset.describe()}")
    reference = name == "small" and not cfg.quick
    cands, missing = contenders(device, reference=reference)
    if not reference:  # the readable reference of one rule, for scale (the others cost memory)
        cands += [c for c in contenders(device, reference=True)[0] if c.name == "sandbox adamp (reference)"]
    opts, failed = build(tset, cands)
    repeats = cfg.repeats or (3 if cfg.quick else 15)
    raw_csv = Path(cfg.out) / "steps_raw.csv"
    if raw_csv.exists():  # rows of an interrupted run of this set are measured again
        old = pd.read_csv(raw_csv)
        old[old["set"] != tset.name].to_csv(raw_csv, index=False)
    raw = time_steps(tset, cands, opts, repeats, device, raw_csv=raw_csv, progress=cfg.progress)
    table = summarise(raw)
    mem = []
    grads = [p.grad.detach().clone() for p in tset.params]

    def restore():
        tset.reset()
        with torch.no_grad():
            torch._foreach_copy_([p.grad for p in tset.params], grads)

    for c in cands:  # quick: the sandbox's rules and the baselines only (the profiler is slow)
        if c.name in opts and (not cfg.quick or c.source == "sandbox" or c.name in (BASELINE, SGD_BASELINE)):
            mem.append({"contender": c.name, **peak_extra_bytes(opts[c.name], device, restore)})
    table = table.merge(pd.DataFrame(mem), on="contender", how="left")
    by_name = {c.name: c for c in cands}
    elem = tset.params[0].element_size()
    table["min_bytes"] = [bw.minimum_bytes(tset.numel, elem, by_name[n].state_arrays)
                          for n in table["contender"]]
    table["achieved_GBps"] = table["min_bytes"] / (table["ms_median"] * 1e-3) / 1e9
    table["frac_copy_bw"] = table["achieved_GBps"] / ref_bw[0]
    table["frac_inplace_bw"] = table["achieved_GBps"] / ref_bw[1]
    table["largest_tensor_bytes"] = tset.largest_bytes
    table["peak_extra_over_largest"] = table["peak_extra_bytes"] / tset.largest_bytes
    table["impl"] = [getattr(opts[n], "last_impl", "") or "" for n in table["contender"]]
    gone = [{"set": tset.name, "contender": n, "status": s} for n, s in
            [(n, "not available") for n in missing] + [(n, f"failed: {e}") for n, e in failed.items()]]
    table["status"] = "ok"
    table = pd.concat([table, pd.DataFrame(gone)], ignore_index=True)
    for k, v in env.items():
        table[k] = v
    table["tensors"], table["params"] = len(tset.params), tset.numel
    del opts
    return table


def goals(steps: pd.DataFrame, raw_csv: Path, device: torch.device) -> pd.DataFrame:
    """The goals against the measured medians (ratios within repeats; memory per rule)."""
    raw = pd.read_csv(raw_csv) if raw_csv.exists() else pd.DataFrame()
    rows = []
    for name in steps["set"].unique():
        s = steps[(steps["set"] == name) & (steps["status"] == "ok")].set_index("contender")
        for goal, num, den, target, sets in (GPU_GOALS if device.type == "cuda" else CPU_GOALS):
            col = "ratio_sgd" if den == SGD_BASELINE else "ratio"
            if num in s.index and name.split(" ")[0] in sets:
                v = s.loc[num]
                rows.append(_goal_row(name, goal, v[col], v[col + "_q25"], v[col + "_q75"], "<=", target))
        rs = raw[raw["set"] == name] if len(raw) else raw
        goal, num, den, target = SPEEDUP_GOAL
        if len(rs) and {num, den} <= set(rs["contender"]):
            w = rs.pivot_table(index="repeat", columns="contender", values="ms")
            r = (w[num] / w[den]).dropna()
            rows.append(_goal_row(name, goal, r.median(), r.quantile(0.25), r.quantile(0.75), ">=", target))
        for n in s.index:
            if n.startswith("sandbox") and "(reference)" not in n:
                v = s.loc[n, "peak_extra_over_largest"]
                rows.append(_goal_row(name, f"{n}: peak extra memory / largest tensor", v, v, v, "<=",
                                      MEMORY_GOAL))
        if device.type == "cuda" and "sandbox adamp" in s.index:
            v = s.loc["sandbox adamp", "frac_copy_bw"]
            rows.append(_goal_row(name, "sandbox adamp: fraction of copy bandwidth", v, v, v, ">=", 0.6))
    return pd.DataFrame(rows)


def _goal_row(tset, goal, value, q25, q75, op, target) -> dict:
    met = bool(value <= target) if op == "<=" else bool(value >= target)
    return {"set": tset, "goal": goal, "measured": float(value), "q25": float(q25),
            "q75": float(q75), "target": f"{op} {target:g}", "met": met if not math.isnan(value) else None}


def _other(module: str, fn: str, cfg: BenchConfig) -> pd.DataFrame:
    try:
        f = getattr(importlib.import_module(module), fn)
    except (ImportError, AttributeError) as e:
        cfg.log(f"  {module}.{fn}: not available ({e})")
        return pd.DataFrame([{"benchmark": module.rsplit('.', 1)[-1], "status": "not available"}])
    cfg.log(f"  running {module}.{fn}(quick={cfg.quick}, device={cfg.device!r})")
    df = f(quick=cfg.quick, device=cfg.device)
    df["status"] = "ok"
    return df


def figure(raw_csv: Path, path: Path) -> Path:
    """Step time / fused AdamW of the same repeat, median and interquartile range, per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    raw = pd.read_csv(raw_csv)
    sets = list(raw["set"].unique())
    order = (raw.groupby("contender")["ratio_adamw_fused"].median().sort_values().index.tolist())
    # a local style: a library function never changes matplotlib's global state
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(1, len(sets), figsize=(6.5 * len(sets), 0.32 * len(order) + 1.8),
                                 squeeze=False, sharey=True)
        for ax, name in zip(axes[0], sets):
            sns.barplot(data=raw[raw["set"] == name], y="contender", x="ratio_adamw_fused",
                        hue="source", order=order, estimator=np.median, errorbar=("pi", 50),
                        dodge=False, ax=ax, legend=ax is axes[0][-1])
            ax.set_xscale("log")
            ax.axvline(1.0, color="k", lw=0.8)
            ax.set_title(name)
            ax.set_xlabel("step time / fused AdamW step time (ratio, log scale)")
            ax.set_ylabel("")
        fig.suptitle("Optimizer step time relative to torch.optim.AdamW(fused=True) in the same repeat\n"
                     "(bar: median over repeats; line: interquartile range)")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return path


def format_report(res: dict[str, pd.DataFrame]) -> str:
    """The terminal report: step table per set, goals, other benchmarks."""
    lines = []
    if "bandwidth" in res:
        b = res["bandwidth"].iloc[0]
        lines.append(f"copy bandwidth: {b['copy_GBps']:.1f} GB/s (IQR {b['copy_GBps_q25']:.1f}–"
                     f"{b['copy_GBps_q75']:.1f}); in-place update: {b.get('inplace_GBps', np.nan):.1f} GB/s "
                     f"({b['device']}, {b['threads']} threads). GB/s below = minimum traffic / time.")
    if "steps" in res:
        s = res["steps"]
        for name in s["set"].unique():
            t = s[s["set"] == name]
            ok = t[t["status"] == "ok"].sort_values("ratio")
            first = ok.iloc[0] if len(ok) else None
            head = f"\n== {name}" + (f": {int(first['tensors'])} tensors, {first['params'] / 1e6:.2f} M "
                                      f"parameters" if first is not None else "")
            lines.append(head)
            lines.append(f"{'contender':36s} {'ms (median [IQR])':>24s} {'/AdamW fused':>17s} "
                         f"{'/SGD fused':>13s} {'GB/s':>6s} {'%copy':>6s} {'%inpl':>6s} {'extra MB':>9s} "
                         f"{'/largest':>8s}")
            for _, r in ok.iterrows():
                lines.append(
                    f"{r['contender']:36s} {r['ms_median']:9.2f} [{r['ms_q25']:6.2f}–{r['ms_q75']:6.2f}] "
                    f"{r['ratio']:6.2f} [{r['ratio_q25']:4.2f}–{r['ratio_q75']:4.2f}] {r['ratio_sgd']:13.2f} "
                    f"{r['achieved_GBps']:6.1f} {100 * r['frac_copy_bw']:5.0f}% "
                    f"{100 * r.get('frac_inplace_bw', np.nan):5.0f}% "
                    f"{r['peak_extra_bytes'] / 2**20:9.2f} {r['peak_extra_over_largest']:8.2f}")
            for _, r in t[t["status"] != "ok"].iterrows():
                lines.append(f"{r['contender']:36s} {r['status']}")
    if "goals" in res and len(res["goals"]):
        lines.append("\n== goals")
        for _, g in res["goals"].iterrows():
            mark = {True: "met", False: "NOT met", None: "n/a"}[g["met"] if g["met"] in (True, False) else None]
            lines.append(f"[{mark:7s}] {g['set']:14s} {g['goal']:56s} {g['measured']:7.2f} "
                         f"[{g['q25']:.2f}–{g['q75']:.2f}] (goal {g['target']})")
    for section in OTHER:
        if section in res:
            lines.append(f"\n== {section}")
            with pd.option_context("display.width", 200, "display.max_columns", 30):
                lines.append(res[section].to_string(index=False))
    if "figure" in res:
        lines.append(f"\nfigure: {res['figure']['path'].iloc[0]}")
    return "\n".join(lines)

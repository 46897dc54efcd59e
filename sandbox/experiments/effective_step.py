"""The noise-driven scale-invariant toy through a registered optimizer: norms and angular steps.

Setting (docs/theory.md, notation): ``replicas`` independent weights w ∈ R^d, stored as ONE
``(replicas, 1, d)`` tensor with ``replica_dims=1`` and stepped by ``sandbox.create(rule, ...)``;
each step every replica gets g = Π⊥(ξ)/‖w‖, ξ ~ N(0, σ²I) (:class:`sandbox.toys.NoiseDrivenToy`).
The item shape (1, d) — one output channel of length d — is what lets AdamP's projection act
(the official AdamP/SGDP never project vectors); the geometry is that of the d-vector.

Recorded per step (every step early, log-spaced later, :func:`sandbox.measure.log_schedule`):
‖w_t‖, Δ_t = angle(w_t, w_{t+1}), the radial and tangential parts of the update, summarised over
replicas (mean, std, 5%/95% quantiles) plus the root mean square ``rms`` — the theory's
predictions are rms values, sqrt(E Δ²). Optional ``probes`` add per-replica quantities read
from the optimizer state (e.g. the root-free preconditioner B·v).

Default dtype float32: on CPU, float64 Gaussian draws cost ~6× float32 ones and dominate a
step; float32 round-off (~1e-7 relative) is far below the replica noise (~1% on Δ with 256
replicas) for the step sizes used here. Pass ``dtype=torch.float64`` for exact-identity work.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import pandas as pd
import torch
from scipy import stats

import sandbox
from sandbox.measure import Recorder, log_schedule, step_geometry
from sandbox.toys import NoiseDrivenToy

Probe = Callable[[torch.optim.Optimizer, torch.Tensor], torch.Tensor]


def noise_toy(d: int, replicas: int, *, r0: float = 1.0, sigma: float = 1.0, seed: int = 0,
              dtype: torch.dtype = torch.float32, device: str = "cpu") -> NoiseDrivenToy:
    """The noise-driven toy with item shape (1, d) (projectable), weights uniform on the r0-sphere."""
    return NoiseDrivenToy(d=d, replicas=replicas, r0=r0, sigma=sigma, seed=seed, dtype=dtype,
                          device=device, shape=(1, d))


def preconditioner_probe(opt: torch.optim.Optimizer, w: torch.Tensor) -> torch.Tensor:
    """Per-replica mean of B·v (root-free rules' preconditioner, without damping)."""
    group = opt.param_groups[0]
    v = opt.state[w]["exp_avg_sq"]
    return group["batch_size"] * v.reshape(v.shape[0], -1).mean(dim=-1)


def run_noise_toy(rule: str, steps: int, replicas: int = 256, d: int = 64, *, r0: float = 1.0,
                  sigma: float = 1.0, seed: int = 0, dtype: torch.dtype = torch.float32,
                  device: str = "cpu", schedule=None, probes: Mapping[str, Probe] | None = None,
                  progress=None, label: str | None = None, impl: str = "reference",
                  threads: int | None = 1, groups: int = 0, **hp) -> pd.DataFrame:
    """Run ``rule`` (a registered name, hyperparameters ``hp``) on the noise-driven toy.

    Returns a tidy table with columns ``step, quantity, mean, std, q05, q95, n, rms, rule,
    label`` (quantity in norm, delta, radial, tangential and the probe names), one row per
    recorded step and quantity; ``step`` is the 0-based index t of the step w_t → w_{t+1}.
    ``progress``: a tqdm-like factory (``progress(total=steps, desc=...)``) or None.
    ``impl``: the optimizer implementation (``sandbox.create(..., impl=)``); the per-tensor
    reference loop by default (the canonical implementation, and the fastest for these small
    tensors on CPU). ``threads``: torch intra-op threads during the run (restored after; None
    leaves them): a (replicas, 1, d) tensor is far too small to split, and on a busy 2-core
    machine two threads made every step 10–20× slower (spin-waiting), so the default is 1.
    ``groups`` = G > 0 also summarises G contiguous groups of replicas: a column ``group`` is −1
    on the rows over all replicas and g on group g's rows (:func:`whole_run` and
    :func:`leave_one_group_out` read them; :func:`sandbox.verify.intervals.jackknife` turns them
    into intervals).

    >>> df = run_noise_toy("sgd", 200, replicas=64, d=16, lr=0.05)     # doctest: +SKIP
    >>> df[df.quantity == "delta"].plot(x="step", y="rms", logx=True, logy=True)  # doctest: +SKIP
    """
    saved = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(rule, steps, replicas, d, r0, sigma, seed, dtype, device, schedule, probes,
                    progress, label, impl, hp, groups)
    finally:
        torch.set_num_threads(saved)


def _run(rule, steps, replicas, d, r0, sigma, seed, dtype, device, schedule, probes, progress,
         label, impl, hp, groups=0) -> pd.DataFrame:
    toy = noise_toy(d, replicas, r0=r0, sigma=sigma, seed=seed, dtype=dtype, device=device)
    opt = sandbox.create(rule, toy.param_groups(), nonfinite="ignore", impl=impl, **hp)
    schedule = log_schedule(steps) if schedule is None else np.asarray(schedule)
    if groups and not 2 <= groups <= replicas:
        raise ValueError(f"groups={groups}: need 2 <= groups <= replicas ({replicas})")
    rec = Recorder(schedule)
    parts = [slice(int(a[0]), int(a[-1]) + 1) for a in np.array_split(np.arange(replicas), groups)] \
        if groups else []
    grouped = []  # (step, quantity names, (quantities, groups) sums of x and x², group sizes)
    extra = []
    bar = progress(total=steps, desc=label or rule, leave=False) if progress else None
    for t in range(steps):
        toy.fill_grad()
        if rec.wants(t):
            before = toy.w.detach().clone()
            opt.step()
            rec.record(t, before, toy.w)
            values = {}
            if parts:
                flat = lambda x: x.reshape(-1, x.shape[-1])  # noqa: E731
                values = step_geometry(flat(before), flat(toy.w))
            for name, probe in (probes or {}).items():
                values[name] = probe(opt, toy.w)
                extra.append(_summary(t, name, values[name]))
            if parts:
                grouped.append((t, list(values), _group_sums(values, parts)))
        else:
            opt.step()
        if bar is not None and (t + 1) % 100 == 0:
            bar.update(100)
    if bar is not None:
        bar.update(steps % 100)
        bar.close()
    frames = [f for f in [rec.frame()] + extra + [_group_frame(grouped)] if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["step", "quantity", "mean", "std", "q05", "q95", "n", "rms",
                                     "rule", "label"])
    df = pd.concat(frames, ignore_index=True)
    df["rms"] = np.sqrt(df["mean"] ** 2 + df["std"] ** 2 * (df["n"] - 1) / df["n"])
    df["rule"] = rule
    df["label"] = label or rule
    if groups:
        df["group"] = df["group"].fillna(-1).astype(int)
    return df


def whole_run(df: pd.DataFrame) -> pd.DataFrame:
    """The rows over all replicas of a :func:`run_noise_toy` table (all rows when it has no
    groups)."""
    return df[df["group"] < 0] if "group" in df.columns else df


def leave_one_group_out(df: pd.DataFrame) -> list[pd.DataFrame]:
    """For a table run with ``groups`` = G: G tables in the format of :func:`whole_run`, the g-th
    summarising every replica except group g's (mean, std, rms and n pooled exactly from the
    groups' summaries; the quantiles are NaN). [] when the run has no groups."""
    if "group" not in df.columns:
        return []
    g = df[df["group"] >= 0].copy()
    n = g["n"].astype(float)
    g["_s1"] = n * g["mean"]
    g["_s2"] = n * (g["mean"] ** 2 + g["std"] ** 2 * (n - 1) / n)
    keys = ["step", "quantity"]
    total = g.groupby(keys)[["n", "_s1", "_s2"]].sum()
    out = []
    for grp in sorted(g["group"].unique()):
        own = g[g["group"] == grp].set_index(keys)[["n", "_s1", "_s2"]]
        rest = total.sub(own, fill_value=0.0)
        m = rest["_s1"] / rest["n"]
        ms = rest["_s2"] / rest["n"]
        var = (ms - m ** 2).clip(lower=0.0) * rest["n"] / (rest["n"] - 1)
        frame = pd.DataFrame({"mean": m, "std": np.sqrt(var), "q05": np.nan, "q95": np.nan,
                              "n": rest["n"].astype(int), "rms": np.sqrt(ms)}).reset_index()
        labels = df[["rule", "label"]].iloc[0]
        out.append(frame.assign(rule=labels["rule"], label=labels["label"], group=-1))
    return out


def _group_sums(values: dict, parts: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Σx and Σx² per (quantity, replica group), and the group sizes (one host transfer)."""
    stacked = torch.stack([v.detach().reshape(-1).double() for v in values.values()])
    s1 = torch.stack([stacked[:, p].sum(1) for p in parts], dim=1)
    s2 = torch.stack([(stacked[:, p] ** 2).sum(1) for p in parts], dim=1)
    n = np.array([p.stop - p.start for p in parts], dtype=float)
    both = torch.stack([s1, s2]).cpu().numpy()
    return both[0], both[1], n


def _group_frame(grouped: list) -> pd.DataFrame:
    """The per-group summary rows (mean, std, n; no quantiles) of the recorded steps."""
    if not grouped:
        return pd.DataFrame()
    frames = []
    for t, names, (s1, s2, n) in grouped:
        mean = s1 / n
        var = np.clip(s2 / n - mean ** 2, 0.0, None) * n / np.maximum(n - 1, 1)
        q, g = np.meshgrid(np.arange(len(names)), np.arange(len(n)), indexing="ij")
        frames.append(pd.DataFrame({"step": t, "quantity": np.asarray(names)[q.ravel()],
                                    "mean": mean.ravel(), "std": np.sqrt(var).ravel(),
                                    "q05": np.nan, "q95": np.nan,
                                    "n": n[g.ravel()].astype(int), "group": g.ravel()}))
    return pd.concat(frames, ignore_index=True)


def _summary(step: int, quantity: str, v: torch.Tensor) -> pd.DataFrame:
    v = v.detach().double().cpu().reshape(-1)
    q = torch.quantile(v, torch.tensor([0.05, 0.95], dtype=v.dtype))
    return pd.DataFrame([{"step": step, "quantity": quantity, "mean": float(v.mean()),
                          "std": float(v.std()) if v.numel() > 1 else 0.0,
                          "q05": float(q[0]), "q95": float(q[1]), "n": v.numel()}])


def series(df: pd.DataFrame, quantity: str, column: str = "rms") -> tuple[np.ndarray, np.ndarray]:
    """(t, values) of one recorded quantity, with t = step + 1 (the number of steps taken)."""
    s = whole_run(df)
    s = s[s["quantity"] == quantity].sort_values("step")
    return s["step"].to_numpy() + 1.0, s[column].to_numpy()


# --- fits ----------------------------------------------------------------------------------------
def fit_power_law(t, y, level: float = 0.95) -> dict:
    """Least-squares fit log y = a + p log t: exponent ``p`` with its ``level`` interval.

    The interval is the OLS one (t-distribution); points on a log schedule are roughly evenly
    spaced in log t. Neighbouring points of a trajectory are correlated, so the interval is a
    lower bound on the real uncertainty (read it as a resolution, not a p-value).
    """
    lt, ly = np.log(np.asarray(t, float)), np.log(np.asarray(y, float))
    res = stats.linregress(lt, ly)
    half = stats.t.ppf(0.5 + level / 2, len(lt) - 2) * res.stderr
    return {"exponent": res.slope, "low": res.slope - half, "high": res.slope + half,
            "prefactor": float(np.exp(res.intercept)), "n": len(lt)}


def fit_inverse_square(t, delta) -> dict:
    """Fit Δ_t^{-2} = c (t + t0): returns the slope ``c`` (predicted (k+1)M) and offset ``t0``.

    Why this form: for k > −1 without decay y = r^{2(k+1)} grows linearly, y = (k+1)Mη²A²(t+t0),
    so Δ^{-2} = y/(η²A²) = (k+1)M (t + t0) — the slope is the claim's constant, free of the
    transient offset t0 that biases a raw comparison of Δ_t with 1/sqrt((k+1)Mt) at finite t.
    """
    t, delta = np.asarray(t, float), np.asarray(delta, float)
    res = stats.linregress(t, delta ** -2.0)
    return {"slope": res.slope, "slope_se": res.stderr, "t0": res.intercept / res.slope}


def late_window(t, lo_fraction: float = 0.1) -> np.ndarray:
    """Boolean mask of the late window t ≥ lo_fraction · t_max (the last decade by default)."""
    t = np.asarray(t, float)
    return t >= lo_fraction * t.max()


# --- §2 helpers ---------------------------------------------------------------------------------
def asymptote_lr(traits, d: int, t0: float = 20.0, r0: float = 1.0) -> float:
    """Learning rate whose transient offset is about ``t0`` steps (k > −1, no decay).

    Δ_t^{-2} = (k+1)M(t + t0) with t0 = r0^{2(k+1)}/((k+1)M η²A²) (theory.angular_step_curve),
    so η = r0^{k+1}/(A sqrt((k+1) M t0)), A from theory.toy_update_size (noise toy, v converged).
    The asymptote is independent of η; only the transient depends on it.
    """
    import theory

    k = float(traits.homogeneity)
    A = float(theory.toy_update_size(traits, d))
    return float(r0 ** (k + 1) / (A * np.sqrt((k + 1) * theory.momentum_factor(traits) * t0)))


def step_squares(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(t, mean over replicas of ‖w_{t+1} − w_t‖²) from the radial/tangential summaries."""
    t, tang = series(df, "tangential")
    _, rad = series(df, "radial")
    return t, tang ** 2 + rad ** 2


def measured_momentum_factor(df: pd.DataFrame, t_lo: float, t_hi: float) -> float:
    """M measured: the growth of E r² over [t_lo, t_hi] divided by Σ_t E‖w_{t+1} − w_t‖².

    The sum over every step is the trapezoid integral of the recorded (log-spaced) points,
    accurate because the replica means are smooth in t. This is the §2 definition of M, free
    of the update size A and of any lag of a second-moment estimate.
    """
    t, r = series(df, "norm")
    ts, s2 = step_squares(df)
    keep = (t >= t_lo) & (t <= t_hi)
    growth = r[keep][-1] ** 2 - r[keep][0] ** 2
    return float(growth / np.trapezoid(s2[keep], ts[keep]))


def growth_linearity(t, y, start: float | None = None) -> float:
    """Ratio of the late to the early slope of y(t) over the last decade (1 when y is linear).

    Early slope: from ``start`` (default t_max/10) to t_max/2; late: from t_max/2 to t_max
    (values interpolated).
    """
    t, y = np.asarray(t, float), np.asarray(y, float)
    a, b, c = (0.1 * t.max() if start is None else start), 0.5 * t.max(), t.max()
    ya, yb, yc = np.interp([a, b, c], t, y)
    return float(((yc - yb) / (c - b)) / ((yb - ya) / (b - a)))

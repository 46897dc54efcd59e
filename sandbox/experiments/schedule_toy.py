"""The noise-driven toy under a learning-rate schedule: measured and predicted r_t, Δ_t, ‖g_t‖/‖w_t‖.

Measured (:func:`run_schedule_toy`): ``replicas`` independent weights w ∈ R^d (item shape (1, d),
so that AdamP's projection acts) stepped by ``sandbox.create(rule, ...)`` with the group's lr set to
γ_t before step t (what a torch LR scheduler does), each step's gradient g = Π⊥(ξ)/‖w‖
(:class:`sandbox.toys.NoiseDrivenToy`). Recorded every ``every`` steps, per replica group: the sums
of squares of ‖w_t‖ (before the step), Δ_t = angle(w_t, w_{t+1}) and ‖g_t‖/‖w_t‖, so that the rms
over all replicas (the theory's predictions are rms values) and over all but one group (the
jackknife intervals of :mod:`sandbox.verify.intervals`) are exact sums. A corrected-decay rule
(AdamC/SGDC) runs with ``normalized=True``: the toy's weight is scale-invariant by construction.

Predicted (:func:`predict_schedule`): :func:`theory.schedules.integrate_schedule` with the rule's
traits read off its stages (:func:`sandbox.optim.traits.rule_traits`) and its size laws
(``StageTraits.size_law``): 'sign' → Lion's sign update (``sign_betas``), 'corrected_decay' →
``corrected=True`` with γ_max = ``lr_max`` or the schedule's peak. A rule or schedule the theory
does not cover raises :class:`theory.schedules.NotCovered` (trust ratios, rotations, Adai,
Nesterov, a custom lr sequence): the caller reports the measurement without a prediction.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

import sandbox
from sandbox.experiments.effective_step import noise_toy
from sandbox.measure import step_geometry
from sandbox.optim.traits import rule_traits, size_laws
from theory.schedules import NotCovered, Schedule, integrate_schedule

QUANTITIES = ("norm", "delta", "grad_ratio")


def schedule_hyperparameters(rule: str, **hp) -> dict:
    """``hp`` plus what the toy needs: ``normalized=True`` for a rule with a corrected decay (the
    toy's weight is scale-invariant)."""
    out = dict(hp)
    if "corrected_decay" in size_laws(rule, **hp):
        out.setdefault("normalized", True)
    return out


def run_schedule_toy(rule: str, sched, replicas: int = 256, d: int = 64, *, r0: float = 1.0,
                     sigma: float = 1.0, seed: int = 0, groups: int = 8, every: int = 1,
                     threads: int | None = 1, dtype: torch.dtype = torch.float32,
                     device: str = "cpu", progress=None, impl: str = "reference",
                     **hp) -> pd.DataFrame:
    """Run ``rule`` on the toy with lr γ_t = ``sched.gamma[t]`` (a :class:`theory.schedules.Schedule`
    or any sequence of learning rates: a schedule the theory does not cover is still measured).

    Returns a tidy table: ``step, gamma, quantity, group, sum_sq, n`` (quantity in
    :data:`QUANTITIES`; one row per recorded step, quantity and replica group), see
    :func:`rms_series` and :func:`group_ids`. ``impl``: the optimizer implementation
    (``sandbox.create(..., impl=)``); the stages by default, the canonical implementation and the
    fastest for these small tensors (a fused kernel's launch costs more than the step)."""
    gamma = np.asarray(sched.gamma if isinstance(sched, Schedule) else sched, dtype=float)
    if gamma.ndim != 1 or len(gamma) == 0 or not np.isfinite(gamma).all() or (gamma < 0).any():
        raise ValueError(f"schedule: need a non-empty 1-D sequence of finite lr >= 0, got {gamma!r}")
    if not 1 <= groups <= replicas:
        raise ValueError(f"groups={groups}: need 1 <= groups <= replicas ({replicas})")
    saved = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(rule, gamma, replicas, d, r0, sigma, seed, groups, every, dtype, device,
                    progress, impl, schedule_hyperparameters(rule, **hp))
    finally:
        torch.set_num_threads(saved)


def _run(rule, gamma, replicas, d, r0, sigma, seed, groups, every, dtype, device, progress, impl, hp):
    toy = noise_toy(d, replicas, r0=r0, sigma=sigma, seed=seed, dtype=dtype, device=device)
    hp = {**hp, "lr": float(gamma[0])}
    opt = sandbox.create(rule, toy.param_groups(), impl=impl, **hp)
    group = opt.param_groups[0]
    group.setdefault("initial_lr", float(gamma.max()))  # as a torch LR scheduler records it
    bounds = np.linspace(0, replicas, groups + 1).astype(int)
    index = torch.as_tensor(np.repeat(np.arange(groups), np.diff(bounds)), device=device)
    sizes = np.diff(bounds)
    steps = len(gamma)
    rows, sums = [], []
    bar = progress(total=steps, desc=rule, leave=False) if progress else None
    for t in range(steps):
        group["lr"] = float(gamma[t])
        g = toy.fill_grad()
        if t % every == 0 or t == steps - 1:
            before = toy.w.detach().reshape(replicas, -1).clone()
            opt.step()
            after = toy.w.detach().reshape(replicas, -1)
            geo = step_geometry(before, after)
            r = geo["norm"]
            ratio = g.reshape(replicas, -1).norm(dim=-1) / r
            stacked = torch.stack([r, geo["delta"], ratio]).double() ** 2
            per_group = torch.zeros(3, groups, dtype=torch.float64, device=device)
            per_group.index_add_(1, index, stacked)
            sums.append(per_group)
            rows.append(t)
        else:
            opt.step()
        if bar is not None and (t + 1) % 100 == 0:
            bar.update(100)
    if bar is not None:
        bar.update(steps % 100)
        bar.close()
    s = torch.stack(sums).cpu().numpy()  # (recorded, quantity, group): one host transfer
    t = np.asarray(rows)
    q, grp = np.meshgrid(np.arange(3), np.arange(groups), indexing="ij")
    n_rec = len(t)
    return pd.DataFrame({
        "step": np.repeat(t, 3 * groups),
        "gamma": np.repeat(gamma[t], 3 * groups),
        "quantity": np.tile(np.asarray(QUANTITIES)[q.ravel()], n_rec),
        "group": np.tile(grp.ravel(), n_rec),
        "sum_sq": s.reshape(n_rec, -1).ravel(),
        "n": np.tile(sizes[grp.ravel()], n_rec),
    }).assign(rule=rule)


def rms_series(df: pd.DataFrame, quantity: str, leave_out: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(steps, rms over replicas) of one quantity of a :func:`run_schedule_toy` table;
    ``leave_out`` = g: over every replica group but g."""
    s = df[df["quantity"] == quantity]
    if leave_out is not None:
        s = s[s["group"] != leave_out]
    agg = s.groupby("step")[["sum_sq", "n"]].sum()
    return agg.index.to_numpy(), np.sqrt(agg["sum_sq"].to_numpy() / agg["n"].to_numpy())


def group_ids(df: pd.DataFrame) -> list[int]:
    return sorted(int(g) for g in df["group"].unique())


def predict_schedule(rule: str, sched: Schedule, d: int = 64, *, r0: float = 1.0,
                     sigma: float = 1.0, stationary_start: bool = False, **hp):
    """:class:`theory.schedules.Trajectory` of ``rule`` at ``hp`` along ``sched`` on the toy
    (raises :class:`~theory.schedules.NotCovered` where the theory does not cover the rule).
    ``stationary_start``: picked up mid-run with warm buffers (see ``integrate_schedule``)."""
    spec = sandbox.info(rule)
    full = {**spec.defaults, **schedule_hyperparameters(rule, **hp)}
    full["lr"] = float(sched.peak)
    laws = size_laws(rule, **full)
    uncovered = laws - {"sign", "corrected_decay"}
    if uncovered:
        raise NotCovered(f"{rule}: no schedule theory for its {', '.join(sorted(uncovered))} stage")
    if "eps" in full and float(full["eps"]) > 1e-6:
        raise NotCovered(f"{rule}: eps = {full['eps']} is not negligible on the toy")
    traits = rule_traits(rule, **full)
    betas = tuple(full.get("betas", (0.9, 0.999)))
    corrected = "corrected_decay" in laws and bool(full.get("normalized"))
    return integrate_schedule(
        traits, sched, float(full.get("weight_decay", 0.0)), d, r0, corrected=corrected,
        gamma_max=full.get("lr_max"), wd_ratio=float(full.get("wd_ratio", 0.1)),
        sign_betas=betas if "sign" in laws else None,
        beta2=betas[1] if float(traits.homogeneity) == 0 and "sign" not in laws else None,
        sigma=sigma, stationary_start=stationary_start)


def prediction_frame(traj, rule: str) -> pd.DataFrame:
    """A Trajectory as a tidy table ``step, gamma, quantity, predicted, rule``."""
    parts = [pd.DataFrame({"step": traj.t, "gamma": traj.gamma, "quantity": q, "predicted": v})
             for q, v in (("norm", traj.r), ("delta", traj.delta), ("grad_ratio", traj.grad_ratio))]
    return pd.concat(parts, ignore_index=True).assign(rule=rule)


__all__ = ["QUANTITIES", "NotCovered", "run_schedule_toy", "rms_series", "group_ids",
           "predict_schedule", "prediction_frame", "schedule_hyperparameters"]

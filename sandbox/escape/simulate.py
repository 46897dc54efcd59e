r"""Particles through the registry's real optimizers, first passages, and the resumable grid.

A *cell* is one optimizer run: one arm (:mod:`sandbox.escape.arms`), one batch size B, one lr,
and ``particles`` replicas for each sharpness factor k, all in one ``(R, 1 + D)`` tensor stepped by
``sandbox.create(rule, [{"params": [θ], "replica_dims": 1}], ...)`` — every particle is its own
replica, so Adai's global mean v̄ is taken per particle over its own 1 + D coordinates. The
gradient is computed in closed form for all particles at once
(:meth:`~sandbox.escape.potentials.EscapeProblem.sample_gradient`).

**Why k, B and η are three views of one law (exact rescaling).** Let ``p`` be the homogeneity
degree of a rule's update in the gradient (SGD, heavy ball, Adai: 1; Adam: 0; root-free: −1;
:attr:`sandbox.RuleSpec.homogeneity`). In the length unit ``y = √k·x`` the problem with sharpness
k becomes the one with k = 1 (``U_k(x) = U_1(y)``), the gradient and the noise in x are √k times
those in y, so a step ``Δx = −η·u(g)`` becomes ``Δy = −η·k^{(1+p)/2}·u(g_y)`` (states such as
momentum and v rescale with the gradient; Adai's β1 depends only on ratios of v). Hence problem k
at lr η *is* problem 1 at lr ``η·k^{(1+p)/2}``: the k-law is the η-law read at
``η_eff ∝ k^{(1+p)/2}`` — 1/k for p = 1, 1/√k for p = 0, k⁰ for p = −1. The rescaling is exact up
to eps/damping and to what does not rescale: root-free Adam's ``v_0 = 1/B`` start and Adai's
spectator directions (fixed curvatures), which is why they are the interesting cases.
"""
from __future__ import annotations

import contextlib
import time
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

import sandbox
from theory.escape_laws import quartic_local_noise_factor

from .arms import get_arm
from .potentials import EscapeProblem
from .rates import escape_rate

RATES_FILE = "escape_rates.csv"
PASSAGE_DIR = "first_passage"


def simulate_cell(rule: str, problem: EscapeProblem, lr: float, max_steps: int, seed: int = 0,
                  progress=None, check_every: int = 200) -> tuple[np.ndarray, dict]:
    """First-passage steps (1..max_steps, 0 = none) of every particle of ``problem`` under the
    arm ``rule`` at learning rate ``lr``, and per-particle diagnostics.

    Particles keep moving after they escape (they settle in the right well); the run stops early
    once every particle has escaped. Every ``check_every`` steps, for rules that expose a
    per-element inertia (Adai's ``β1`` in ``optimizer.last_info``), the β1 of the escape coordinate
    and the mean β1 of the spectators are accumulated over the particles still inside; the
    diagnostics dict holds their per-particle averages (``beta1_escape``, ``beta1_spectators``;
    NaN where never sampled or for other rules)."""
    arm = get_arm(rule)
    batch = problem.batch_size
    if arm.takes_batch_size and not bool((batch == batch[0]).all()):
        raise ValueError(f"{rule}: one cell holds one batch size (its batch_size hyperparameter "
                         f"is per param group)")
    theta = problem.initial_theta()
    opt = sandbox.create(arm.rule, [{"params": [theta], "replica_dims": 1}], lr=lr,
                         nonfinite="ignore", impl=arm.impl, **arm.hyperparameters(float(batch[0])))
    gen = torch.Generator(device=theta.device).manual_seed(int(seed))
    first = torch.zeros(problem.replicas, dtype=torch.int32, device=theta.device)
    acc = torch.zeros(3, problem.replicas, dtype=torch.float64, device=theta.device)
    done = 0
    for t in range(1, max_steps + 1):
        theta.grad = problem.sample_gradient(theta, gen)
        opt.step()
        first.masked_fill_(problem.escaped(theta) & (first == 0), t)
        if t % check_every == 0 or t == max_steps:
            _accumulate_inertia(acc, opt.last_info.get(theta, {}), first == 0)
            if progress is not None:
                progress.update(t - done)
            done = t
            if bool((first > 0).all()):
                break
    if progress is not None and done < max_steps:
        progress.update(max_steps - done)
    if not bool(torch.isfinite(theta).all()):
        raise FloatingPointError(f"{rule} at lr={lr:g} diverged (non-finite parameters); lower "
                                 f"the lr or the reference exponent")
    acc = acc.cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        diag = {"beta1_escape": acc[1] / acc[0], "beta1_spectators": acc[2] / acc[0]}
    return first.cpu().numpy(), diag


def _accumulate_inertia(acc: torch.Tensor, info: dict, inside: torch.Tensor) -> None:
    """Add the current β1 (escape coordinate; mean over spectators) of the particles inside."""
    if "beta1" not in info:
        return
    beta1 = info["beta1"]  # indexing, not .get: the fast path computes it lazily on access
    w = inside.to(acc.dtype)
    acc[0] += w
    acc[1] += w * beta1[:, 0].to(acc.dtype)
    if beta1.shape[1] > 1:
        acc[2] += w * beta1[:, 1:].mean(dim=1).to(acc.dtype)
    else:
        acc[2] += float("nan")


def cell_id(rule: str, problem_name: str, B: float, lr_factor: float, ks, particles: int,
            max_steps: int, seed: int, exponent_ref: float, burn_in: int, noise: str,
            extra=()) -> str:
    """The key of one cell's rows in the results table (every setting that changes them);
    ``extra``: the (k, B) points the cell holds besides every k at ``B``."""
    ks = ",".join(f"{k:g}" for k in ks)
    more = "".join(f";{k:g}@{b:g}" for k, b in extra)
    return (f"{rule}|{problem_name}|{noise}|B={B:g}|f={lr_factor:g}|k={ks}{more}|P={particles}"
            f"|T={max_steps}|b={burn_in}|s={seed}|E={exponent_ref:g}")


def _as_list(x) -> list:
    return [float(v) for v in np.atleast_1d(np.asarray(x, dtype=float))]


@contextlib.contextmanager
def _threads(n: int | None):
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def run_escape_grid(rules: Sequence[str], ks: Sequence[float], B=8, eta=1.0, particles: int = 10_000,
                    max_steps: int = 4000, seed: int = 0, *, problem: str = "double_well",
                    spectators: Sequence[float] = (), noise: str = "minimum", barrier: float = 0.05,
                    h0: float = 1.0, k_ref: float = 2.0, B_ref: float = 8.0,
                    exponent_ref: float = 4.0, burn_in: int | None = None,
                    out: str | Path | None = None, device: str = "cpu",
                    dtype: torch.dtype = torch.float32, threads: int | None = None,
                    progress=None, extra_points=()) -> pd.DataFrame:
    """Escape rates for every rule × B × lr factor, each cell holding every k in ``ks``.

    ``extra_points``: further (k, B) points run in the same cells as ``ks`` at the (single) ``B``
    by the rules whose hyperparameters do not depend on B (every particle has its own noise
    level; one optimizer step moves them all, so a B sweep costs no optimizer steps of its own);
    rules with a ``batch_size`` hyperparameter (root-free Adam) run them in cells of their own B.

    ``eta``: multiplier(s) on each rule's calibrated lr (:meth:`Arm.calibrated_lr`: the lr at
    which the predicted exponent ΔL/T is ``exponent_ref`` at ``(k_ref, B_ref)``). ``B``: batch
    size(s) of the gradient noise (and rfadamw's ``batch_size``). ``problem`` is a label for the
    potential (``spectators`` gives its extra curvatures). ``burn_in`` (default max_steps // 5)
    steps are left out of the rate (:func:`sandbox.escape.rates.escape_rate`).

    With ``out``, each cell's rows are appended to ``out/escape_rates.csv`` and its first-passage
    steps written to ``out/first_passage/`` as soon as the cell is done; a rerun skips the cells
    already in the table. ``progress``: a tqdm-like factory (``progress(total=..., desc=...)``),
    ``True`` for tqdm, or None. Returns one row per (rule, B, lr factor, k).
    """
    burn_in = max_steps // 5 if burn_in is None else int(burn_in)
    ks, Bs, fs = _as_list(ks), _as_list(B), _as_list(eta)
    extra = [(float(k), float(b)) for k, b in extra_points]
    if extra and len(Bs) != 1:
        raise ValueError("extra_points need a single B for the k sweep")
    for r in rules:
        get_arm(r)
    out = Path(out) if out is not None else None
    table = out / RATES_FILE if out is not None else None
    have = pd.read_csv(table) if table is not None and table.exists() else pd.DataFrame()
    done_ids = set(have["cell_id"]) if "cell_id" in have else set()
    cells = []  # (rule, B of the cell's k sweep, lr factor, ks, extra points)
    for r in rules:
        own = get_arm(r).takes_batch_size
        for b in Bs:
            for f in fs:
                cells.append((r, b, f, tuple(ks), () if own else tuple(extra)))
                if own:  # its batch_size is a hyperparameter: a cell per B
                    for b2 in dict.fromkeys(x for _, x in extra):
                        cells.append((r, b2, f, tuple(k for k, x in extra if x == b2), ()))
    ids = {c: cell_id(c[0], problem, c[1], c[2], c[3], particles, max_steps, seed, exponent_ref,
                      burn_in, noise, c[4]) for c in cells}
    todo = [c for c in cells if ids[c] not in done_ids]
    if progress is True:
        from tqdm.auto import tqdm as progress
    bar = progress(total=len(todo) * max_steps, desc=f"escape {problem}", unit="step") \
        if progress and todo else None
    rows = [have[have["cell_id"].isin(ids.values())]] if len(have) else []
    with _threads(threads):
        for c in todo:
            rule, b, f, cks, cextra = c
            rows.append(_run_cell(rule, b, f, cks, particles, max_steps, seed, problem, spectators,
                                  noise, barrier, h0, k_ref, B_ref, exponent_ref, burn_in, device,
                                  dtype, ids[c], out, bar, cextra))
    if bar is not None:
        bar.close()
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _run_cell(rule, B, f, ks, particles, max_steps, seed, problem_name, spectators, noise, barrier,
              h0, k_ref, B_ref, exponent_ref, burn_in, device, dtype, cid, out, bar,
              extra=()) -> pd.DataFrame:
    arm = get_arm(rule)
    lr = f * arm.calibrated_lr(exponent_ref, k_ref * h0, B_ref, barrier)
    points = [(float(k), float(B)) for k in ks] + [(float(k), float(b)) for k, b in extra]
    k_all = torch.tensor([k for k, _ in points], dtype=torch.float64).repeat_interleave(particles)
    b_all = torch.tensor([b for _, b in points], dtype=torch.float64).repeat_interleave(particles)
    prob = EscapeProblem(k_all, b_all, barrier=barrier, h0=h0, spectators=spectators, noise=noise,
                         dtype=dtype, device=device)
    # the local noise multiplies the exponent by a shape factor R (theory.escape_laws)
    R = quartic_local_noise_factor(prob.floor) if noise == "local" else 1.0
    cell_seed = zlib.crc32(cid.encode()) ^ int(seed)
    start = time.perf_counter()
    first, diag = simulate_cell(rule, prob, lr, max_steps, cell_seed, progress=bar)
    seconds = time.perf_counter() - start
    rows = []
    for i, (k, B) in enumerate(points):
        part = slice(i * particles, (i + 1) * particles)
        H_a = k * h0
        rows.append({
            "rule": rule, "registry_rule": arm.rule, "problem": problem_name, **prob.describe(),
            "k": k, "H_a": H_a, "B": B, "lr": lr, "lr_factor": f, "max_steps": max_steps,
            "burn_in": burn_in, "seed": seed,
            **escape_rate(first[part], max_steps, burn_in),
            **{name: float(np.nanmean(v[part])) if np.isfinite(v[part]).any() else float("nan")
               for name, v in diag.items()},
            "predicted_exponent": R * float(arm.exponent(H_a, B, lr, barrier)),
            "predicted_neg_log_rate": float(arm.predicted_neg_log_rate(H_a, B, lr, barrier))
            + (R - 1.0) * float(arm.exponent(H_a, B, lr, barrier)),
            "seconds": seconds / len(points), "device": str(device), "cell_id": cid,
        })
    df = pd.DataFrame(rows)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / PASSAGE_DIR).mkdir(exist_ok=True)
        name = f"{zlib.crc32(cid.encode()):08x}.csv.gz"
        pd.DataFrame({"cell_id": cid, "k": np.repeat([k for k, _ in points], particles),
                      "B": np.repeat([b for _, b in points], particles), "first_passage": first}) \
            .to_csv(out / PASSAGE_DIR / name, index=False)
        table = out / RATES_FILE
        df.to_csv(table, mode="a", header=not table.exists(), index=False)
    return df

r"""Rows of the rotation size law (theory §7, ``theory.rotational``: Kosson, Messmer & Jaggi, ICML
2024) for the ``identities`` (exact, float64) and ``equilibria`` (noisy, float32) families: not a
family itself.

Rules are those with a stage of size law 'rotation'
(:func:`~sandbox.verify.applicability.rules_with_law`). The toy: the noise-driven toy with item
shape (``NEURONS``, ``L``) = (8, 16) per replica, so that every replica holds 8 neurons (rows) that
the rotational step turns one by one; the rows are centred at initialisation (the official
helper's job, a condition of the exact first step with ``zero_mean``). The target ρ is
``theory.rotational.rotational_target`` of the base rule the traits give (:func:`base_formula`:
a sign stage → RV-Lion's, an EMA k = 0 direction → RV-AdamW's, a k = 1 direction → RV-SGD's).

Exact (``identities``; float64, eps = 0, every neuron of every replica):
- ``identity.rotational_first_step`` — Δ_1 = arctan(ρ‖d_c‖/‖d‖) per neuron
  (``first_step_angle``), d = the base direction at step 1 with its radial part removed, taken
  from a twin optimizer of the same rule that does not rotate (weight decay 0, lr 1: its step is
  −d); measured max |Δ_1/pred − 1| (1e-10).
- ``identity.rotational_norm`` — every neuron's norm stays at its value at initialisation (the
  recorded n) at every step: max |‖w_row,t‖/n − 1| (1e-12).

Noisy (``equilibria``; float32, 8 replica groups, jackknife intervals):
- ``equilibrium.rotational_delta`` — rms Δ_t over all neurons against ``rotational_angular_step``
  (arctan(ρ κ f_t): the centring factor κ and the start-up factor f_t of a momentum direction,
  the predicted overshoot of up to 21% at β = 0.9), compared as rms over the windows
  t ∈ [1, 10], [11, 100], [101, T] (windows and the 5% tolerance fixed before any run). The base
  momentum is 0.9 (heavy ball or EMA β1); lr = 0.01, λ = 0.1.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

import sandbox
from sandbox.experiments.run_cache import cached, stable_seed
from sandbox.toys import NoiseDrivenToy
from sandbox.verify.applicability import (claim_hyperparameters, exact_limit, momentum_hyper,
                                          momentum_of, rules_with_law, size_laws)
from sandbox.verify.base import VerifyConfig
from sandbox.verify.intervals import jackknife
from sandbox.verify.rows import claim_selected, make_row, progress, setting_text
from sandbox.verify.tracking import angle_between, create
from theory import rotational as rot

SIZE_LAWS = ("rotation",)
IDENTITY_CLAIMS = ("identity.rotational_first_step", "identity.rotational_norm")
EQUILIBRIUM_CLAIMS = ("equilibrium.rotational_delta",)
TOL_FIRST, TOL_NORM, TOL_DELTA = 1e-10, 1e-12, 0.05
NEURONS, L, GROUPS = 8, 16, 8
LR, LAM, BETA = 0.01, 0.1, 0.9
WINDOWS = ((1, 10), (11, 100), (101, None))


def sizes(cfg: VerifyConfig) -> dict:
    """Quick: 64 replicas (512 neurons), 300 noisy steps, 50 exact steps on 32 replicas;
    full: 256 replicas (2,048 neurons), 1,000 noisy steps, 500 exact steps on 64 replicas."""
    if cfg.quick:
        return {"replicas": 64, "steps": 300, "exact_replicas": 32, "exact_steps": 50}
    return {"replicas": 256, "steps": 1000, "exact_replicas": 64, "exact_steps": 500}


def base_formula(rule: str) -> str | None:
    """Which published target ρ (theory.rotational.rotational_target's names) the rule's base
    direction has, from its traits: 'rvlion', 'rvadamw', 'rvsgd' (None: no published target)."""
    spec = sandbox.info(rule)
    if "sign" in size_laws(rule):
        return "rvlion"
    if spec.momentum_kind == "ema" and spec.homogeneity == 0:
        return "rvadamw"
    if spec.homogeneity == 1 and spec.momentum_kind in ("heavy_ball", "none"):
        return "rvsgd"
    return None


def rules(cfg: VerifyConfig) -> list[str]:
    restrict = cfg.extra.get("rules")
    return [r for r in rules_with_law("rotation")
            if base_formula(r) and (restrict is None or r in restrict)]


def hyperparameters(rule: str, exact: bool = False) -> dict:
    spec = sandbox.info(rule)
    over = {**momentum_hyper(spec, BETA), **(exact_limit(spec) if exact else {})}
    return claim_hyperparameters(spec, LR, weight_decay=LAM, **over)


def target(rule: str, hp: dict) -> float:
    full = {**sandbox.info(rule).defaults, **hp}
    return rot.rotational_target(base_formula(rule), full["lr"], full["weight_decay"],
                                 tuple(full.get("betas", (0.9, 0.999))), full.get("momentum", 0.0))


def startup_beta(rule: str, hp: dict) -> float:
    """The momentum whose energy build-up sets f_t: 0 for a sign direction (‖d‖² fixed)."""
    return 0.0 if "sign" in size_laws(rule) else momentum_of(sandbox.info(rule), hp)


def make_toy(replicas: int, seed: int, dtype, device) -> NoiseDrivenToy:
    toy = NoiseDrivenToy(NEURONS * L, replicas, seed=seed, dtype=dtype, device=device,
                         shape=(NEURONS, L))
    toy.w.sub_(toy.w.mean(dim=-1, keepdim=True))  # every neuron centred at initialisation
    return toy


def _rows_of(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, L)


# --- identities ----------------------------------------------------------------------------------
def identity_jobs(cfg: VerifyConfig) -> list[tuple]:
    """(claim, rule, toy, opts) units for the identities family, one per rule."""
    if not any(claim_selected(cfg, c) for c in IDENTITY_CLAIMS):
        return []
    first = next(c for c in IDENTITY_CLAIMS if claim_selected(cfg, c))
    return [(first, r, "rotational", {}) for r in rules(cfg)]


def identity_rows(cfg, claim, rule, kind, o):
    """Both exact rows of one rule (those ``cfg.only`` selects) and no curve."""
    s = sizes(cfg)
    toy = make_toy(s["exact_replicas"], o.get("seed", 0), torch.float64, cfg.device)
    hp = hyperparameters(rule, exact=True)
    twin_w = toy.w.clone()
    opt = create(rule, toy.param_groups(), **hp)
    twin = create(rule, [{"params": [twin_w], "replica_dims": 1}],
                  **{**hp, "weight_decay": 0.0, "lr": 1.0})
    w0 = _rows_of(toy.w).clone()
    n0 = w0.norm(dim=-1)
    g = toy.fill_grad()
    twin_w.grad = g.clone()
    twin.step()
    opt.step()
    d = _rows_of(twin_w) - w0  # lr 1, no decay, no rotation: the step is −(base direction)
    d = d - w0 * ((d * w0).sum(-1, keepdim=True) / n0.unsqueeze(-1) ** 2)
    dc = d - d.mean(dim=-1, keepdim=True)
    rho = target(rule, hp)
    pred = rot.first_step_angle(rho, d.norm(dim=-1).cpu().numpy(), dc.norm(dim=-1).cpu().numpy(),
                                eps=float(hp.get("eps", 0.0)))
    first = angle_between(w0, _rows_of(toy.w)).cpu().numpy()
    worst = float((_rows_of(toy.w).norm(dim=-1) / n0 - 1).abs().max())
    for _ in range(s["exact_steps"] - 1):
        toy.fill_grad()
        opt.step()
        worst = max(worst, float((_rows_of(toy.w).norm(dim=-1) / n0 - 1).abs().max()))
    rotating = opt.last_info.get(toy.w, {}).get("rotational")
    setting = setting_text(toy=f"noise ({NEURONS},{L}) float64", R=s["exact_replicas"],
                           steps=s["exact_steps"], **{k: v for k, v in hp.items()
                                                       if k in ("lr", "weight_decay", "momentum",
                                                                "betas", "eps")})
    neurons = f"{first.size} neurons"
    rows = [make_row("identities", "identity.rotational_first_step", rule, setting, 0.0,
                     float(np.max(np.abs(first / pred - 1))), TOL_FIRST, "absolute",
                     status="derived",
                     note=f"max over {neurons} of |Δ_1/arctan(ρ‖d_c‖/‖d‖) − 1|, ρ = {rho:.6g} "
                          f"({base_formula(rule)}'s published target); Δ_1 from "
                          f"{first.min():.5g} to {first.max():.5g}; rotational={rotating}"),
            make_row("identities", "identity.rotational_norm", rule, setting, 0.0, worst,
                     TOL_NORM, "absolute", status="derived",
                     note=f"max over {neurons} and {s['exact_steps']} steps of |‖w_row‖/n − 1|, "
                          f"n the centred norm at initialisation")]
    return [r for r in rows if claim_selected(cfg, r["claim"])], pd.DataFrame()


# --- noisy angular step --------------------------------------------------------------------------
def plan(cfg: VerifyConfig) -> list[tuple[str, str, float]]:
    if not claim_selected(cfg, EQUILIBRIUM_CLAIMS[0]):
        return []
    return [(EQUILIBRIUM_CLAIMS[0], r, float(sizes(cfg)["steps"])) for r in rules(cfg)]


def _delta_run(rule, hp, steps, replicas, seed, device) -> pd.DataFrame:
    """Mean square Δ over each replica group's neurons per step (float32)."""
    toy = make_toy(replicas, seed, torch.float32, device)
    opt = create(rule, toy.param_groups(), **hp)
    ms = np.empty((steps, GROUPS))
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for t in range(steps):
            before = toy.w.clone()
            toy.fill_grad()
            opt.step()
            a = angle_between(_rows_of(before), _rows_of(toy.w)).double().reshape(GROUPS, -1)
            ms[t] = (a ** 2).mean(dim=1).cpu().numpy()
    finally:
        torch.set_num_threads(saved)
    return pd.DataFrame({"step": np.repeat(np.arange(1, steps + 1), GROUPS),
                         "group": np.tile(np.arange(GROUPS), steps), "ms": ms.ravel()})


def _window_rms(ms: np.ndarray, lo: int, hi: int) -> float:
    return float(np.sqrt(np.mean(ms[lo - 1:hi])))


def rows(cfg: VerifyConfig, family: str, version: int) -> list[dict]:
    """The ``equilibrium.rotational_delta`` rows (one per rule and window) of ``family``."""
    s = sizes(cfg)
    out = []
    for _, rule, _ in progress(cfg, plan(cfg), desc=family):
        hp = hyperparameters(rule)
        seed = cfg.seed + stable_seed("rotational " + rule)
        key = {"family": family, "version": version, "part": "rotational", "rule": rule, "hp": hp,
               "steps": s["steps"], "replicas": s["replicas"], "shape": (NEURONS, L),
               "seed": seed, "device": cfg.device, "groups": GROUPS}
        df = cached(cfg.family_dir(family) / "runs", key, lambda: _delta_run(
            rule, hp, s["steps"], s["replicas"], seed, cfg.device))
        ms = df.pivot(index="step", columns="group", values="ms").sort_index().to_numpy()
        full = {**sandbox.info(rule).defaults, **hp}
        rho, beta = target(rule, hp), startup_beta(rule, hp)
        t = np.arange(1, s["steps"] + 1)
        pred = rot.rotational_angular_step(rho, L, full["zero_mean"], t=t, beta=beta,
                                           undf=full["update_norm_decay_factor"])
        setting = setting_text(toy=f"noise ({NEURONS},{L})", R=s["replicas"], steps=s["steps"],
                               **{k: v for k, v in hp.items()
                                  if k in ("lr", "weight_decay", "momentum", "betas")})
        for lo, hi in WINDOWS:
            hi = s["steps"] if hi is None else hi
            whole = {"rms": _window_rms(ms.mean(axis=1), lo, hi)}
            loo = [{"rms": _window_rms(np.delete(ms, g, axis=1).mean(axis=1), lo, hi)}
                   for g in range(GROUPS)]
            interval = jackknife(whole, loo)["rms"]
            p = float(np.sqrt(np.mean(pred[lo - 1:hi] ** 2)))
            f_max = float(rot.rotational_startup_factor(np.arange(lo, hi + 1), beta,
                                                        full["update_norm_decay_factor"]).max())
            out.append(make_row(
                family, EQUILIBRIUM_CLAIMS[0], rule, f"{setting} window=[{lo},{hi}]", p,
                whole["rms"], TOL_DELTA, status="derived", interval=interval,
                note=f"rms Δ over t ∈ [{lo}, {hi}] and {s['replicas'] * NEURONS} neurons vs "
                     f"arctan(ρ κ f_t), ρ = {rho:.4g} ({base_formula(rule)}), κ = "
                     f"{rot.centring_factor(L, full['zero_mean']):.4f}, start-up factor up to "
                     f"{f_max:.3f} (base momentum {beta:g}); without it: "
                     f"{math.atan(rho * rot.centring_factor(L, full['zero_mean'])):.4g}"))
    return out

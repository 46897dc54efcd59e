r"""Notebook 05's experiments on root-free rules (Lin et al., ICML 2024), small and batched.

1. :func:`reparam_runs` — invariance to a diagonal reparametrisation θ = D ⊙ φ (theory §6,
   :func:`theory.rootfree_reparam_map`): every rule runs on the noisy quadratic and on two
   reparametrised copies that share its noise (:class:`sandbox.toys.Reparametrised`), in the exact
   limit (every eps/damping 0) and with the start of non-zero states mapped (v_0 → D² v_0,
   :func:`sandbox.verify.families.invariances.prime_start`). A rule homogeneous of degree k in the
   gradient multiplies each coordinate's θ-space update by D^{k+1}
   (:func:`theory.loss_scale_update_factor` times D): root-free (k = −1) is invariant, Adam's is
   multiplied by D, SGD's by D².
2. :func:`quadratic_stationary` — Newton-likeness on the noisy quadratic with noise covariance
   H/B, started at the minimum: per coordinate, the stationary Var θ_i against
   :func:`theory.noisy_quadratic_stationary_variance` (SGD η/(B(2 − ηH)), Adam ≈ η/(2√(BH)),
   root-free η/(2BH): the Gibbs distribution of a Newton step), and root-free's preconditioner
   B·v/H against :func:`theory.noisy_quadratic_newton_step` (→ 1 + η/2).

Both use the toys and optimizers of the package; the loops here only record what the notebook
plots (the verify family ``invariances`` checks the same claims at its own sizes).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

import sandbox
import theory
from sandbox.toys import NoisyQuadratic, Reparametrised
from sandbox.verify.applicability import claim_hyperparameters, exact_limit, theory_traits
from sandbox.verify.families.invariances import diag_variants, prime_start


def reparam_runs(rules: dict, steps: int, replicas: int = 16, d: int = 8, batch_size: int = 4,
                 seed: int = 0, device: str = "cpu") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run each ``rules[name] = lr`` on the noisy quadratic and two θ = D ⊙ φ copies.

    Returns (deviation, factors): ``deviation`` — per rule, variant and step, the max over
    replicas of ‖θ_t − D ⊙ φ_t‖/‖θ_t‖ (0 for an invariant rule); ``factors`` — the first step's
    θ-space update ratio (copy/original) per coordinate, with the predicted D^{k+1}.
    """
    dev_rows, fac_rows = [], []
    for rule, lr in rules.items():
        spec = sandbox.info(rule)
        base = NoisyQuadratic(d, replicas, batch_size=batch_size, condition=100.0, theta0=1.0,
                              seed=seed, device=device)
        diags = diag_variants(d, seed)
        stack = Reparametrised(base, diags=[torch.ones(d, dtype=torch.float64)] + diags)
        hp = claim_hyperparameters(spec, lr, batch_size, **exact_limit(spec))
        opt = sandbox.create(rule, stack.param_groups(), **hp)
        prime_start(opt, stack, spec, {**spec.defaults, **hp}, batch_size)
        k = float(spec.homogeneity)
        prev = stack.theta().detach().clone()
        for t in range(steps):
            stack.fill_grad()
            opt.step()
            theta = stack.theta().detach()
            if t == 0:
                # θ-space update ratio copy/original per coordinate, (2, R, d)
                ratio = ((theta[1:] - prev[1:]) / (theta[:1] - prev[:1])).cpu().numpy()
                D = np.broadcast_to(np.stack([x.numpy() for x in diags])[:, None, :], ratio.shape)
                pred = theory.loss_scale_update_factor(D, k) * D
                fac_rows.append(pd.DataFrame({"rule": rule, "k": k, "D": D.ravel(),
                                              "predicted": pred.ravel(), "measured": ratio.ravel()}))
            err = ((theta[1:] - theta[:1]).flatten(2).norm(dim=-1)
                   / theta[:1].flatten(2).norm(dim=-1)).amax(dim=-1).cpu().numpy()  # (2,)
            dev_rows.append({"rule": rule, "k": k, "step": t + 1, "variant 1": err[0],
                             "variant 2": err[1]})
    dev = pd.DataFrame(dev_rows).melt(id_vars=["rule", "k", "step"], var_name="variant",
                                      value_name="deviation")
    return dev, pd.concat(fac_rows, ignore_index=True)


def quadratic_stationary(configs: dict, steps: int, replicas: int = 256, d: int = 8,
                         batch_size: int = 4, condition: float = 100.0, seed: int = 0,
                         device: str = "cpu") -> pd.DataFrame:
    """Per rule (``configs[name] = hp``) and coordinate: measured and predicted stationary
    Var θ_i and, where the rule keeps a second moment, B·v_i/H_i (root-free: predicted by
    :func:`theory.noisy_quadratic_newton_step`). Started at the minimum θ = 0; the second half
    of the run is averaged (over replicas and steps).
    """
    rows = []
    for rule, hp in configs.items():
        spec = sandbox.info(rule)
        toy = NoisyQuadratic(d, replicas, batch_size=batch_size, condition=condition, theta0=0.0,
                             seed=seed, device=device)
        full_hp = claim_hyperparameters(spec, hp["lr"], batch_size,
                                        **{k: v for k, v in hp.items() if k != "lr"})
        opt = sandbox.create(rule, toy.param_groups(), **full_hp)
        var = torch.zeros(d, dtype=torch.float64, device=toy.device)
        bv = torch.zeros(d, dtype=torch.float64, device=toy.device)
        n = 0
        for t in range(steps):
            toy.fill_grad()
            opt.step()
            if t >= steps // 2:
                var += (toy.w ** 2).mean(0)
                v = opt.state[toy.w].get("exp_avg_sq")
                if v is not None:
                    bv += batch_size * v.mean(0)
                n += 1
        H = toy.curvatures.cpu().numpy()
        full = {**spec.defaults, **full_hp}
        traits = theory_traits(rule, full_hp)
        damping = float(full["eps"]) if spec.homogeneity == -1 else 0.0
        eps = float(full["eps"]) if spec.homogeneity == 0 else 0.0
        pred_var = theory.noisy_quadratic_stationary_variance(H, batch_size, full["lr"], traits,
                                                              damping=damping, eps=eps)
        has_v = "exp_avg_sq" in opt.state[toy.w]
        pred_bv = (theory.noisy_quadratic_newton_step(H, batch_size, full["lr"], traits,
                                                      damping=damping)["ratio"]
                   if spec.homogeneity == -1 else np.full(d, np.nan))
        rows.append(pd.DataFrame({
            "rule": rule, "k": float(spec.homogeneity), "H": H,
            "var_measured": (var / n).cpu().numpy(), "var_predicted": pred_var,
            "bv_over_H_measured": (bv / n).cpu().numpy() / H if has_v else np.nan,
            "bv_over_H_predicted": pred_bv, "lr": full["lr"], "steps": steps,
            "replicas": replicas, "batch_size": batch_size}))
    return pd.concat(rows, ignore_index=True)


def plateau_lr(rule: str, d: int, delta: float, **hp) -> float:
    """Learning rate whose lag-free constant angular step is ``delta`` without damping
    (Δ = arctan(ηA) ≈ ηA, A the scale-free update size of
    :func:`sandbox.experiments.rootfree.predict_geometric`)."""
    from sandbox.experiments import rootfree as rf

    return float(delta / rf.predict_geometric(rule, d, **dict(hp, lr=1.0, eps=0.0))["spec_A"])


def crossover_run(rule: str, d: int = 64, replicas: int = 64, crossover: float = 2.0,
                  delta: float = 0.015, steps: int | None = None, seed: int = 0,
                  device: str = "cpu", **hp) -> tuple[pd.DataFrame, dict]:
    """A root-free run whose damping takes over at radius ≈ ``crossover`` (λ = (d−1)/(d r_c²),
    the noise toy's B·v at r_c, B = 1), started with a plateau step ``delta``.

    Returns the run's table (:func:`run_noise_toy`, with the ``bv`` probe) and
    :func:`sandbox.experiments.rootfree.crossover_measurements`: predicted and measured radius
    where Δ halves, the largest deviation from the quasi-static profile Δ(r), the late log-log
    slope of Δ_t (→ −1/2 once the rule has become SGD with lr η/λ).
    ``steps`` default: enough to pass 1.1× the predicted half-plateau radius.
    """
    from sandbox.experiments import rootfree as rf
    from sandbox.experiments.effective_step import preconditioner_probe, run_noise_toy

    from .toy_runs import record_schedule

    hp = dict(hp, batch_size=1, eps=float((d - 1) / (d * crossover ** 2)))
    hp["lr"] = plateau_lr(rule, d, delta, **hp)
    if steps is None:
        plateau = rf.predict_geometric(rule, d, **dict(hp, eps=0.0))["delta"]
        r = np.geomspace(1.0, 20.0, 200)
        r_half = rf.half_radius(r, rf.predict_profile(rule, r, d, **hp), plateau / 2)
        steps = int(1.05 * rf.steps_to_radius(rule, 1.1 * r_half, d, **hp))
    df = run_noise_toy(rule, steps, replicas, d, seed=seed, device=device,
                       schedule=record_schedule(steps), probes={"bv": preconditioner_probe}, **hp)
    return df, {**rf.crossover_measurements(df, rule, d, 150.0, **hp), "hp": hp, "steps": steps}

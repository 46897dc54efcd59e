"""Probed training runs on a named problem: the measurements behind the real-net theory checks.

:func:`probed_run` trains one model (one seed) of a :mod:`sandbox.problems` problem with a rule,
records the :class:`~sandbox.probes.ScaleInvarianceProbe` table on a schedule and returns it. Two
experimental devices, both exploiting scale invariance itself (f(c·w) = f(w), c > 0):

- ``freeze_non_invariant``: only the scale-invariant weights train; the classifier and the
  normalisations' affine parameters stay at their initial values. The logits then have a bounded
  scale, so the training loss cannot be driven to zero and the mini-batch gradient stays
  noise-dominated (its scale-free norm r‖g‖ roughly constant) — the regime of the asymptotic
  predictions of theory §2. With every parameter trained, a small data set is interpolated, r‖g‖
  decays like a power of t, and the rate of Δ_t follows the gradient instead.
- ``rescale_to``: a *matched start*. The theory's dynamics depend on the norm only through a
  transient (an offset t0 in Δ_t = 1/sqrt((k+1)M(t + t0)); a relaxation from r0 to r* in the
  weight-decay equilibrium). After ``burn_in`` steps (momentum and second-moment estimates
  filled, the first steps' large updates over), each scale-invariant weight's rms angular step
  Δ_now over the last ``RESCALE_WINDOW`` steps is measured; since Δ ∝ r^{−(k+1)} for a rule
  homogeneous of degree k in the gradient, the weight is multiplied by
  c = (Δ_now/Δ_target)^{1/(k+1)} — the network's function does not change — and the optimizer
  state is rescaled equivariantly (:func:`rescale_equivariant`), so that training goes on with
  Δ ≈ Δ_target. The measurement windows begin several relaxation times later, so a wrong target
  would be forgotten, not imposed. (k ≤ −1, root-free: Δ does not depend on r; no rescaling.)

Under a learning-rate schedule (``lr_schedule``: one lr γ_t per step) every param group's lr is set
to γ_t before step t and its ``initial_lr`` to max γ, as torch's LR schedulers do (the corrected
decay of AdamC/SGDC reads γ_max from it). ``normalised_groups=True`` builds the param groups from
the architecture's ground truth (:func:`sandbox.probes.normalised_groups.normalised_param_groups`:
``normalized=True`` on the scale-invariant tensors, the key AdamC/SGDC require; a rule without
that key gets the same groups without it).

Results are written as they are produced: ``path`` receives the probe rows (appended at every
flush) under ``<path stem>.partial.csv`` and the complete table is moved to ``path`` only when
the run ends, so a rerun with the same ``path`` finds the complete file and returns it without
training; an interrupted run is redone from its start (its partial rows stay for inspection).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

import sandbox

from .probe import ScaleInvarianceProbe
from .architecture import scale_invariance_ground_truth


@contextlib.contextmanager
def cpu_threads(n: Optional[int]):
    """Temporarily limit torch's intra-op threads (small nets on a shared CPU run faster on one)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def ground_truth(problem, model: torch.nn.Module) -> dict[str, bool]:
    """Scale invariance per parameter from the module graph (torch.fx), cross-checked against the
    problem's own declaration when it has one: a disagreement is an error, not a silent choice."""
    fx = {k: v.scale_invariant for k, v in scale_invariance_ground_truth(model).items()}
    declared = getattr(problem, "scale_invariant", None)
    if declared is not None:
        mismatch = sorted(k for k, v in fx.items() if v != (k in set(declared)))
        if mismatch:
            raise RuntimeError(f"{problem.name}: the module-graph analysis and the problem's "
                               f"declared scale-invariant weights disagree on {mismatch}")
    return fx


RESCALE_WINDOW = 20


@torch.no_grad()
def rescale_equivariant(optimizer: torch.optim.Optimizer, param: torch.Tensor, c: float) -> None:
    """w ← c·w with the optimizer state a rule would hold had every past gradient been taken at
    the new scale (g ∝ 1/r on a scale-invariant weight): state tensors of the parameter's shape
    are multiplied by 1/c, second moments (``exp_avg_sq``) by 1/c²; counters are kept. Exact for
    states built from gradients only; a coupled L2 term inside a buffer scales the other way,
    which only perturbs the transient."""
    param.mul_(c)
    for key, s in optimizer.state.get(param, {}).items():
        if torch.is_tensor(s) and s.shape == param.shape and s.is_floating_point():
            s.mul_(c ** (-2.0 if key == "exp_avg_sq" else -1.0))


def learning_rates(lr_schedule, steps: int) -> Optional[np.ndarray]:
    """The first ``steps`` learning rates of ``lr_schedule`` (a sequence, or an object with a
    ``gamma`` array such as :class:`theory.schedules.Schedule`) as floats; None stays None.
    Raises ValueError when it is shorter than ``steps`` or holds a non-finite or negative lr."""
    if lr_schedule is None:
        return None
    gamma = np.asarray(getattr(lr_schedule, "gamma", lr_schedule), dtype=float)
    if gamma.ndim != 1 or len(gamma) < steps:
        raise ValueError(f"lr_schedule: need one lr per step ({steps}), got shape {gamma.shape}")
    gamma = gamma[:steps]
    if not np.isfinite(gamma).all() or (gamma < 0).any() or not gamma.max() > 0:
        raise ValueError("lr_schedule: learning rates must be finite, >= 0 and not all 0")
    return gamma


def param_groups(model: torch.nn.Module, rule: str, hp: Mapping[str, Any], *,
                 normalised: bool = False, decay_vectors: bool = True) -> list:
    """The param groups of the trainable parameters of ``model`` for ``rule``.

    ``normalised``: split by the architecture's ground truth
    (:func:`~sandbox.probes.normalised_groups.normalised_param_groups`), the scale-invariant group
    with ``normalized=True`` and the rest with ``normalized=False``; the key is left out for a
    rule that does not have it (the same split, so rules compare on equal groups).
    ``decay_vectors=False`` (when ``hp`` sets a ``weight_decay``): the 1-D parameters of each
    group move to a group of their own with ``weight_decay=0``, keeping their ``normalized`` flag.
    A group with no parameters is omitted. Without either option: the plain parameter list."""
    from .normalised_groups import normalised_param_groups

    trainable = [p for p in model.parameters() if p.requires_grad]
    split_vectors = not decay_vectors and "weight_decay" in hp
    if not normalised and not split_vectors:
        return trainable
    if normalised:
        groups = normalised_param_groups(model, only_trainable=True)
        if "normalized" not in sandbox.info(rule).defaults:
            groups = [{k: v for k, v in g.items() if k != "normalized"} for g in groups]
    else:
        groups = [{"params": trainable}]
    if not split_vectors:
        return groups
    out = []
    for g in groups:
        extra = {k: v for k, v in g.items() if k != "params"}
        matrices = [p for p in g["params"] if p.ndim >= 2]
        vectors = [p for p in g["params"] if p.ndim < 2]
        if matrices:
            out.append({"params": matrices, **extra})
        if vectors:
            name = {"name": f"{extra['name']}_vectors"} if "name" in extra else {}
            out.append({"params": vectors, **extra, **name, "weight_decay": 0.0})
    return out


def _train(problem, model, rule: str, hp: Mapping[str, Any], steps: int, seed: int, *,
           schedule, labels, path, freeze: bool, autocast: Optional[torch.dtype], gt,
           burn_in: int = 0, rescale_to: Optional[Mapping[str, float]] = None,
           decay_vectors: bool = True, lr_schedule: Optional[Sequence[float]] = None,
           normalised_groups: bool = False):
    from ..training.data_order import DataOrder
    from .probe import make_schedule

    params = dict(model.named_parameters())
    if freeze:
        for name, p in params.items():
            p.requires_grad_(gt.get(name, False))
    gamma = learning_rates(lr_schedule, steps)
    if gamma is not None:
        peak = float(gamma.max())
        if "lr" in hp and not np.isclose(float(hp["lr"]), peak, rtol=1e-9, atol=0.0):
            raise ValueError(f"hp lr={hp['lr']!r} differs from the lr_schedule's peak {peak!r}: "
                             "leave lr out (the schedule sets it) or give the peak")
        hp = {**hp, "lr": peak}
    groups = param_groups(model, rule, hp, normalised=normalised_groups,
                          decay_vectors=decay_vectors)
    opt = sandbox.create(rule, groups, **hp)
    if gamma is not None:
        for g in opt.param_groups:  # as torch's LR schedulers record the base lr (the peak)
            g["initial_lr"] = float(gamma.max())
    user = make_schedule(schedule)
    rescaling = bool(rescale_to) and float(sandbox.info(rule).homogeneity) > -1 and burn_in > 0
    lo = max(0, burn_in - RESCALE_WINDOW)
    wants = (lambda t: user(t) or lo <= t < burn_in) if rescaling else user
    probe = ScaleInvarianceProbe(opt, {k: v for k, v in params.items() if v.requires_grad},
                                 ground_truth=gt, schedule=wants, labels=labels, path=path)
    order = DataOrder(len(problem.train[1]), problem.batch_size, [seed])
    x, y = problem.train
    ctx = (torch.autocast(device_type=x.device.type, dtype=autocast) if autocast is not None
           else contextlib.nullcontext())
    model.train()
    scales: dict[str, float] = {}
    k = float(sandbox.info(rule).homogeneity)
    try:
        for t in range(steps):
            if rescaling and t == burn_in:
                late = probe.frame()
                late = late[(late.step >= lo) & (late.step < burn_in)]
                rms = late.groupby("layer").delta.apply(lambda d: float(np.sqrt(np.mean(np.square(d)))))
                for name, target in rescale_to.items():
                    if name in rms and np.isfinite(rms[name]) and rms[name] > 0:
                        scales[name] = float((rms[name] / target) ** (1.0 / (k + 1.0)))
                        rescale_equivariant(opt, params[name], scales[name])
            if gamma is not None:
                for g in opt.param_groups:
                    g["lr"] = float(gamma[t])
            idx = order.batch(t)[0].to(x.device)
            with ctx:
                loss = problem.loss(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.float().backward()
            opt.step()
    finally:
        probe.detach()
    df = probe.frame()
    if rescaling:  # the burn-in window was recorded for the rescale only
        df = df[[user(int(s)) for s in df.step]].reset_index(drop=True)
    df["rescale"] = df["layer"].map(scales).fillna(1.0)
    df["rescaled_at"] = burn_in if scales else -1
    return df


def probed_run(problem, rule: str, hp: Mapping[str, Any], steps: int, *, seed: int = 0,
               schedule=10, labels: Mapping | None = None, path: str | Path | None = None,
               freeze_non_invariant: bool = False, burn_in: int = 0,
               rescale_to: float | Mapping[str, float] | None = None,
               autocast: Optional[torch.dtype] = None, threads: Optional[int] = None,
               decay_vectors: bool = True, lr_schedule: Optional[Sequence[float]] = None,
               normalised_groups: Optional[bool] = None) -> pd.DataFrame:
    """Train ``rule`` (hyperparameters ``hp``, passed to ``sandbox.create``) on ``problem`` for
    ``steps`` steps from ``problem.build(seed)`` and return the probe table (one row per recorded
    step and weight; columns of :data:`sandbox.probes.COLUMNS` plus ``rule``, ``seed``, the
    ``labels``, ``rescale`` (the factor c of the matched start, 1 if none) and ``rescaled_at``).

    ``rescale_to``: target angular step (one value for every scale-invariant weight, or a dict
    by name) of the matched start after ``burn_in`` steps (module docstring).
    ``autocast``: e.g. ``torch.bfloat16`` runs the forward pass under ``torch.autocast`` (the
    parameters, gradients and optimizer stay in the problem's dtype). ``decay_vectors=False``
    puts 1-D parameters (biases, normalisation affine weights) in a param group without weight
    decay (the usual "no decay on norms and biases" recipe): a decayed BatchNorm γ shrinks the
    next layer's pre-activation variance until BatchNorm's eps is no longer negligible, and the
    weights after it stop being scale-invariant. ``lr_schedule``: one learning rate per step
    (at least ``steps``; a :class:`theory.schedules.Schedule` works too), set on every group
    before each step, with ``initial_lr`` = its maximum (``hp['lr']``, if given, must be that
    peak); the ``lr`` column records it. ``normalised_groups``: param groups from the
    architecture's ground truth with the ``normalized`` key AdamC/SGDC require (module
    docstring); None (default): exactly when the rule reads that key and ``hp`` does not set it
    (:func:`sandbox.training.architecture_groups.needs_architecture`), so AdamC/SGDC run
    unchanged; False: never (those rules then refuse, naming the key). ``path``: a CSV file; when it
    exists the run is not repeated and its table is returned. ``threads``: torch intra-op threads
    for the run (CPU), restored afterwards.
    """
    final = Path(path) if path is not None else None
    if final is not None and final.exists():
        return pd.read_csv(final)
    labels = {"rule": rule, "seed": seed, **dict(labels or {})}
    if normalised_groups is None:
        from sandbox.training.architecture_groups import needs_architecture

        normalised_groups = needs_architecture(rule, hp)
    with cpu_threads(threads):
        model = problem.build(seed)
        gt = ground_truth(problem, model)
        targets = None
        if rescale_to is not None:
            targets = (dict(rescale_to) if isinstance(rescale_to, Mapping)
                       else {n: float(rescale_to) for n, v in gt.items() if v})
        partial = final.with_name(final.stem + ".partial.csv") if final is not None else None
        if partial is not None:
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.unlink(missing_ok=True)
        df = _train(problem, model, rule, hp, steps, seed, schedule=schedule, labels=labels,
                    path=partial, freeze=freeze_non_invariant, autocast=autocast, gt=gt,
                    burn_in=burn_in, rescale_to=targets, decay_vectors=decay_vectors,
                    lr_schedule=lr_schedule, normalised_groups=normalised_groups)
    if final is not None:
        tmp = final.with_name(final.stem + ".tmp")
        df.to_csv(tmp, index=False)
        tmp.replace(final)
        partial.unlink(missing_ok=True)
    return df

"""A Cockpit-like instrument specialised for scale invariance (Schneider, Dangel & Hennig,
"Cockpit: A Practical Debugging Tool for the Training of Deep Neural Networks", NeurIPS 2021, for
the idea of cheap per-layer probes; the quantities are the ones of AdamP, Heo et al., ICLR 2021).

:class:`ScaleInvarianceProbe` hooks an optimizer's ``step`` (``register_step_pre_hook`` /
``register_step_post_hook``) and, at the steps of a schedule, records per weight (one row per
replica when the weight's param group has ``replica_dims``) with w = w_t, w' = w_{t+1}, g the raw
gradient of the step, u = w' − w, r = ‖w‖, ŵ = w/r, d = dim(w):

=================  =====================================================================
``norm``            r = ‖w_t‖
``delta``           Δ_t = angle(w_t, w_{t+1}) = atan2(‖Π⊥u‖, r + ⟨ŵ, u⟩)   (radians)
``radial``          ⟨ŵ, u⟩ (signed);  ``tangential``: ‖Π⊥u‖, Π⊥u = u − ŵ⟨ŵ, u⟩
``grad_norm``       ‖g‖;  ``grad_tangential``: ‖Π⊥g‖
``cos_channel``     max over output channels of |cos(g_c, w_c)|; ``thr_channel`` = δ/sqrt(L_c)
``cos_layer``       |cos(g, w)| of the whole tensor; ``thr_layer`` = δ/sqrt(d)
``detected``        AdamP's test computed by the probe: 1 if cos_channel < thr_channel, else
                    2 if cos_layer < thr_layer, else 0 (same order of views as the projection)
``projection``      the optimizer's own verdict ``opt.last_info[p]['projection']`` (0/1/2), −1
                    when the optimizer does not record one (a rule without projection)
``scale_invariant`` the ground truth from the architecture (:mod:`.architecture`)
``lr``              the param group's nominal learning rate
``eff_lr``          the effective learning rate ‖Π⊥u‖ / (r²‖Π⊥g‖): the angular step per unit of
                    the scale-free gradient r·Π⊥g. For SGD without momentum or decay on a
                    scale-invariant weight (g ⟂ w) it is exactly lr/r² (van Laarhoven 2017;
                    Hoffer et al., NeurIPS 2018); for other rules it is the measured counterpart.
``beta1_*``         Adai's per-element inertia β1 (``last_info[p]['beta1']``): mean and the 5%,
                    50%, 95% quantiles over the weight's elements (NaN for other rules)
``precond_*``       root-free preconditioner B·v (state ``exp_avg_sq`` × ``batch_size``, the
                    damping not included): min, median, max over elements (NaN for other rules)
=================  =====================================================================

Besides, every row carries ``step``, ``layer`` (the parameter's name), ``replica``, ``d``,
``channels`` and the probe's ``labels``. Any ``torch.optim.Optimizer`` works; the columns an
optimizer does not provide (projection verdict, β1, preconditioner) are −1 or NaN.

Cost model: everything is whole-tensor on the parameters' device. The per-weight results of a
record (one small (k, replicas) float64 tensor each) stay on the device; a flush (every
``flush_every`` records, and in :meth:`frame`/:meth:`detach`) concatenates all pending ones and
moves them to the host in ONE transfer, where the constant columns (thresholds, lr) and the test's
verdict are filled in. So the step itself has no host synchronisation (tested by spying on every
Tensor → host conversion), and steps off the schedule cost one predicate call in each hook.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Union

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from ..measure import step_geometry
from ..optim.replicas import rows

DEVICE_COLUMNS = ("norm", "delta", "radial", "tangential", "grad_norm", "grad_tangential",
                  "cos_channel", "cos_layer", "projection", "eff_lr")
BETA_COLUMNS = ("beta1_mean", "beta1_q05", "beta1_q50", "beta1_q95")
PRECOND_COLUMNS = ("precond_min", "precond_q50", "precond_max")
COLUMNS = ("norm", "delta", "radial", "tangential", "grad_norm", "grad_tangential",
           "cos_channel", "thr_channel", "cos_layer", "thr_layer", "detected", "projection",
           "eff_lr", "lr") + BETA_COLUMNS + PRECOND_COLUMNS
INT_COLUMNS = ("detected", "projection")
DEFAULT_EVERY = 20  # amortises a record (0.6–1.4 of a digits-bnmlp step on CPU) to <= 10%
Schedule = Union[int, Iterable[int], Callable[[int], bool], None]


def make_schedule(schedule: Schedule) -> Callable[[int], bool]:
    """A predicate on the 0-based step: ``None`` → every :data:`DEFAULT_EVERY` steps; an int n →
    every n steps; an iterable → exactly those steps; a callable → itself."""
    if schedule is None:
        schedule = DEFAULT_EVERY
    if isinstance(schedule, bool):
        raise ValueError(f"invalid schedule={schedule!r}: give an int >= 1, steps, or a callable")
    if isinstance(schedule, int):
        if schedule < 1:
            raise ValueError(f"invalid schedule={schedule}: recording every n steps needs n >= 1")
        n = schedule
        return lambda step: step % n == 0
    if callable(schedule):
        return schedule
    steps = {int(s) for s in schedule}
    return steps.__contains__


def _quantiles(x: Tensor, qs: tuple[float, ...]) -> Tensor:
    """Per-row quantiles of a (R, n) tensor → (len(qs), R): the order statistic nearest to
    q·(n−1) (numpy's method='nearest'), by selection (O(n)) rather than a sort — a sort of a
    16k-element weight cost more than the rest of a record. The indices are known on the host,
    so there is no device transfer. On the CPU one ``np.partition`` selects all of them in one
    pass (measured 2× faster than one ``kthvalue`` per quantile on 8k–16k elements); elsewhere
    (and for 16-bit tensors, which numpy lacks) ``kthvalue``. Both give the same elements."""
    n = x.shape[-1]
    ks = [min(n - 1, max(0, round(q * (n - 1)))) for q in qs]
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        part = np.partition(x.detach().numpy(), ks, axis=-1)  # a copy: x is left as it is
        return torch.from_numpy(np.ascontiguousarray(part[..., ks].T))
    return torch.stack([x.kthvalue(k + 1, dim=-1).values for k in ks])


def _as(x: Tensor, dtype: torch.dtype) -> Tensor:
    return x if x.dtype == dtype else x.to(dtype)


class _Tracked:
    """One weight under the probe: its name, replica axes, ground truth and scratch tensors."""

    __slots__ = ("name", "param", "rd", "group", "invariant", "w_before", "pre", "replicas",
                 "numel", "row_length", "index")

    def __init__(self, name, param, rd, group, invariant):
        self.name, self.param, self.rd, self.group, self.invariant = name, param, rd, group, invariant
        self.w_before: Optional[Tensor] = None
        self.pre: Optional[list] = None
        self.replicas = math.prod(param.shape[:rd])
        self.numel = math.prod(param.shape[rd:])
        channels = param.shape[rd] if param.ndim > rd else 1
        self.row_length = self.numel // max(channels, 1) if self.numel else 0
        self.index = {"layer": name, "replica": np.arange(self.replicas), "d": self.numel,
                      "channels": channels, "scale_invariant": invariant}


class ScaleInvarianceProbe:
    """Records the scale-invariance probes of ``named_params`` at the steps of ``schedule``.

    Use :func:`attach` to build one from a model (ground truth from its module graph). ``labels``
    are constant columns added to every row (rule, seed, ...); ``replica_labels`` map a column
    name to one value per replica (e.g. ``{"seed": seeds}`` for stacked seeds). ``path``: a CSV
    file the rows are appended to at every flush (a crash loses at most ``flush_every`` records).
    ``include_vectors``: also record 1-D parameters (AdamP never projects them; off by default).
    ``start_step``: the value of the step counter for the first ``optimizer.step()`` seen.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, named_params: Mapping[str, Tensor],
                 ground_truth: Mapping[str, bool] | None = None, schedule: Schedule = None,
                 labels: Mapping | None = None, path: str | Path | None = None,
                 flush_every: int = 50, include_vectors: bool = False, start_step: int = 0,
                 replica_labels: Mapping[str, Iterable] | None = None):
        if flush_every < 1:
            raise ValueError(f"invalid flush_every={flush_every}: must be >= 1")
        self.optimizer, self.wants = optimizer, make_schedule(schedule)
        self.labels, self.flush_every = dict(labels or {}), flush_every
        self.replica_labels = {k: np.asarray(list(v)) for k, v in (replica_labels or {}).items()}
        self.path = Path(path) if path is not None else None
        self.step, self._handles = start_step, []
        self._pending: list[tuple[int, list]] = []
        self._frames: list[pd.DataFrame] = []
        ground_truth = dict(ground_truth or {})
        group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
        self.tracked: list[_Tracked] = []
        for name, p in named_params.items():
            if id(p) not in group_of:
                continue
            g = group_of[id(p)]
            rd = int(g.get("replica_dims", 0))
            if p.ndim - rd < 2 and not include_vectors:
                continue
            self.tracked.append(_Tracked(name, p, rd, g, bool(ground_truth.get(name, False))))
        if not self.tracked:
            raise ValueError("the probe found no weight to record: none of named_params is in the "
                             "optimizer's param groups (or all are vectors)")
        self.attach()

    # --- hooks ---------------------------------------------------------------------------------
    def attach(self) -> "ScaleInvarianceProbe":
        if not self._handles:
            self._handles = [self.optimizer.register_step_pre_hook(self._pre),
                             self.optimizer.register_step_post_hook(self._post)]
        return self

    def detach(self) -> None:
        """Remove the hooks and flush what is pending."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self.flush()

    @torch.no_grad()
    def _pre(self, optimizer, args, kwargs) -> None:
        if not self.wants(self.step):
            return
        for t in self.tracked:
            g = t.param.grad
            if g is None:
                t.pre = None
                continue
            t.w_before = t.param.detach().clone()
            t.pre = self._gradient_probes(t, g.detach())

    @torch.no_grad()
    def _post(self, optimizer, args, kwargs) -> None:
        step, self.step = self.step, self.step + 1
        if not self.wants(step):
            return
        record = []
        for t in self.tracked:
            if t.pre is None:  # no gradient this step: NaN keeps the table rectangular
                record.append((None, {}))
                continue
            record.append(self._step_probes(t, optimizer))
            t.w_before, t.pre = None, None
        self._pending.append((step, record))
        if len(self._pending) >= self.flush_every:
            self.flush()

    # --- the probes ----------------------------------------------------------------------------
    @staticmethod
    def _eps(group: Mapping) -> float:
        return float(group.get("proj_eps", group.get("eps", 1e-8)))

    def _gradient_probes(self, t: _Tracked, g: Tensor) -> list[Tensor]:
        """Before the step: AdamP's cosine in both views and the gradient norms, all from three
        per-row sums ⟨w,g⟩, ‖w‖², ‖g‖² (the layer view's are the sums over rows):
        |cos| = |⟨w,g⟩| / sqrt(max(‖w‖²‖g‖², eps²)), ‖Π⊥g‖² = ‖g‖² − ⟨w,g⟩²/‖w‖². (The projection
        computes the same cosines with ``F.cosine_similarity``; they agree to round-off.)"""
        acc = torch.promote_types(t.param.dtype, torch.float32)
        eps = self._eps(t.group)
        wr = _as(rows(t.param.detach(), t.rd, "channel"), acc)  # (*R, C, L)
        gr = _as(rows(g, t.rd, "channel"), acc)
        sums = torch.stack([wr * gr, wr * wr, gr * gr]).sum(dim=-1)  # (3, *R, C)
        sums = sums.reshape(3, t.replicas, -1)
        dot_c, ww_c, gg_c = sums
        cos_c = (dot_c.abs() / (ww_c * gg_c).clamp_min(eps * eps).sqrt()).amax(dim=-1)
        dot, ww, gg = sums.sum(dim=-1)
        cos_l = dot.abs() / (ww * gg).clamp_min(eps * eps).sqrt()
        return [cos_c, cos_l, gg.sqrt(), (gg - dot * dot / ww).clamp_min(0.0).sqrt()]

    def _step_probes(self, t: _Tracked, optimizer) -> tuple[Tensor, dict]:
        """After the step: the device part of a record, (k, R) in float64 with the rows of
        :data:`DEVICE_COLUMNS` (+ β1 and preconditioner rows when present), and its host part."""
        acc = torch.promote_types(t.param.dtype, torch.float32)
        flat = (lambda x: _as(x.reshape(math.prod(x.shape[:t.rd]), -1), acc))
        geo = step_geometry(flat(t.w_before), flat(t.param.detach()))
        r, delta, radial, tang = geo["norm"], geo["delta"], geo["radial"], geo["tangential"]
        cos_c, cos_l, g_norm, g_tan = t.pre
        info = getattr(optimizer, "last_info", {}).get(t.param, {})
        proj = info.get("projection")
        proj = _as(proj.reshape(-1), acc) if proj is not None else torch.full_like(r, -1.0)
        rows_ = [r, delta, radial, tang, g_norm, g_tan, cos_c, cos_l, proj, tang / (r * r * g_tan)]
        beta1 = info.get("beta1")
        if beta1 is not None:
            b = flat(beta1)
            rows_ += [b.mean(dim=-1), *_quantiles(b, (0.05, 0.5, 0.95))]
        state = optimizer.state.get(t.param, {})
        B = t.group.get("batch_size")
        rootfree = getattr(getattr(optimizer, "rule", None), "homogeneity", None) == -1
        has_pre = rootfree and B is not None and "exp_avg_sq" in state
        if has_pre:
            pre = flat(state["exp_avg_sq"]) * B
            rows_ += [pre.amin(dim=-1), _quantiles(pre, (0.5,))[0], pre.amax(dim=-1)]
        delta_hp = float(t.group.get("delta", 0.1))
        host = {"thr_channel": delta_hp / math.sqrt(t.row_length),
                "thr_layer": delta_hp / math.sqrt(t.numel), "lr": float(t.group.get("lr", "nan")),
                "beta1": beta1 is not None, "precond": has_pre}
        return _as(torch.stack([_as(x, acc) for x in rows_]), torch.float64), host

    # --- the table -----------------------------------------------------------------------------
    def flush(self) -> None:
        """Move pending records to the host (one transfer), append them to ``path`` if set."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        parts = [v for _, rec in pending for v, _ in rec if v is not None]
        flat = torch.cat([p.reshape(-1).to(parts[0].device) for p in parts]).cpu().numpy() \
            if parts else np.zeros(0)
        n_rows = sum(t.replicas for _ in pending for t in self.tracked)
        vals = np.full((n_rows, len(COLUMNS)), np.nan)
        col = {c: i for i, c in enumerate(COLUMNS)}
        meta = {k: [] for k in ("step", "layer", "replica", "d", "channels", "scale_invariant")}
        row, pos = 0, 0
        for step, rec in pending:
            for t, (v, host) in zip(self.tracked, rec):
                n = t.replicas
                for k in ("layer", "replica", "d", "channels", "scale_invariant"):
                    meta[k].append(np.broadcast_to(t.index[k], (n,)))
                meta["step"].append(np.full(n, step))
                if v is not None:
                    k = v.shape[0]
                    names = list(DEVICE_COLUMNS) + (list(BETA_COLUMNS) if host["beta1"] else []) \
                        + (list(PRECOND_COLUMNS) if host["precond"] else [])
                    vals[row:row + n, [col[c] for c in names]] = flat[pos:pos + k * n].reshape(k, n).T
                    for c in ("thr_channel", "thr_layer", "lr"):
                        vals[row:row + n, col[c]] = host[c]
                    pos += k * n
                row += n
        df = pd.DataFrame({k: np.concatenate(v) for k, v in meta.items()})
        df = pd.concat([df, pd.DataFrame(vals, columns=COLUMNS)], axis=1)
        cos_c, cos_l = df["cos_channel"].to_numpy(), df["cos_layer"].to_numpy()
        df["detected"] = np.where(cos_c < df["thr_channel"].to_numpy(), 1,
                                  np.where(cos_l < df["thr_layer"].to_numpy(), 2, 0))
        df.loc[np.isnan(cos_c), "detected"] = np.nan
        for c in INT_COLUMNS:
            df[c] = df[c].astype("Int64")
        for k, v in self.labels.items():
            df[k] = v
        for k, v in self.replica_labels.items():
            df[k] = v[df["replica"].to_numpy()]
        self._frames.append(df)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(self.path, mode="a", header=not self.path.exists(), index=False)

    def frame(self) -> pd.DataFrame:
        """Every record so far as one tidy table: one row per (step, layer, replica)."""
        self.flush()
        if not self._frames:
            return pd.DataFrame(columns=("step", "layer", "replica", "d", "channels",
                                         "scale_invariant") + COLUMNS)
        return pd.concat(self._frames, ignore_index=True)


def attach(model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
           named_params: Mapping[str, Tensor] | None = None, example_input=None,
           ground_truth: Mapping[str, bool] | None = None, **kwargs) -> ScaleInvarianceProbe:
    """Attach a :class:`ScaleInvarianceProbe` to ``optimizer``, naming the weights after ``model``.

    The ground truth comes from ``model``'s module graph (torch.fx, or forward hooks on
    ``example_input`` when fx cannot trace it; see :mod:`sandbox.probes.architecture`) unless
    given. ``named_params`` overrides the tensors (e.g. stacked copies with a replica axis that
    the optimizer steps instead of the model's own parameters, matched by name).
    """
    from .architecture import scale_invariance_ground_truth

    if ground_truth is None:
        gt = scale_invariance_ground_truth(model, example_input)
        ground_truth = {k: v.scale_invariant for k, v in gt.items()}
    params = dict(named_params) if named_params is not None else dict(model.named_parameters())
    return ScaleInvarianceProbe(optimizer, params, ground_truth=ground_truth, **kwargs)


def training_hook(**kwargs) -> Callable:
    """An ``attach`` callable for :func:`sandbox.training.runs.train_seeds` (signature
    ``(optimizer, named_params, model, seeds) -> probe``): the probe names the weights after the
    template model, reads the stacked tensors the optimizer steps, and labels each replica with
    its seed. ``kwargs`` go to :class:`ScaleInvarianceProbe` (schedule, path, labels, ...)."""
    def hook(optimizer, named_params, model, seeds):
        return attach(model, optimizer, named_params=named_params,
                      replica_labels={"seed": list(seeds)}, **kwargs)
    return hook

"""Measurements of scale-invariant dynamics, per replica, on a schedule, into tidy tables.

For a weight w (one row per replica) and one optimizer step w_t → w_{t+1}:
- ``norm``: ‖w_t‖;
- ``delta``: the angular update Δ_t = angle(w_t, w_{t+1}) (radians, computed with atan2 of the
  cross and dot parts, accurate for tiny angles);
- ``radial``: ⟨ŵ_t, w_{t+1} − w_t⟩ (signed), ``tangential``: ‖Π⊥(w_{t+1} − w_t)‖.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor


def log_schedule(steps: int, dense: int = 100, per_decade: int = 40) -> np.ndarray:
    """Steps (0-based, < steps) to record: every step up to ``dense``, then log-spaced."""
    early = np.arange(min(dense, steps))
    if steps <= dense:
        return early
    late = np.unique(np.geomspace(dense, steps - 1, int(per_decade * np.log10(steps / dense)) + 2)
                     .astype(int))
    return np.unique(np.concatenate([early, late]))


def step_geometry(w_before: Tensor, w_after: Tensor) -> dict[str, Tensor]:
    """Per-row norm, angular step, radial and tangential parts of the update (last axis)."""
    u = w_after - w_before
    r = w_before.norm(dim=-1)
    w_hat = w_before / r.unsqueeze(-1)
    radial = (w_hat * u).sum(dim=-1)
    tang = (u - w_hat * radial.unsqueeze(-1)).norm(dim=-1)
    delta = torch.atan2(tang, r + radial)
    return {"norm": r, "delta": delta, "radial": radial, "tangential": tang}


class Recorder:
    """Collects :func:`step_geometry` at scheduled steps; ``frame()`` gives a tidy table.

    ``per_replica=False`` (default) keeps per-step summaries over replicas (mean, std, 5% and 95%
    quantiles, count) in long form: columns ``step, quantity, mean, std, q05, q95, n``.
    ``per_replica=True`` keeps every replica: columns ``step, replica, norm, delta, radial,
    tangential``.
    """

    def __init__(self, schedule, per_replica: bool = False, **labels):
        self.schedule = set(int(s) for s in schedule)
        self.per_replica, self.labels, self._rows = per_replica, labels, []

    def wants(self, step: int) -> bool:
        return step in self.schedule

    def record(self, step: int, w_before: Tensor, w_after: Tensor) -> None:
        geo = {k: v.detach().reshape(-1).double().cpu() for k, v in
               step_geometry(w_before.reshape(-1, w_before.shape[-1]),
                             w_after.reshape(-1, w_after.shape[-1])).items()}
        if self.per_replica:
            n = geo["norm"].numel()
            self._rows.append(pd.DataFrame({"step": step, "replica": np.arange(n),
                                            **{k: v.numpy() for k, v in geo.items()}}))
            return
        for q, v in geo.items():
            qs = torch.quantile(v, torch.tensor([0.05, 0.95], dtype=v.dtype)) if v.numel() > 1 \
                else v.repeat(2)
            self._rows.append(pd.DataFrame([{
                "step": step, "quantity": q, "mean": float(v.mean()),
                "std": float(v.std()) if v.numel() > 1 else 0.0,
                "q05": float(qs[0]), "q95": float(qs[1]), "n": v.numel()}]))

    def frame(self) -> pd.DataFrame:
        if not self._rows:
            return pd.DataFrame()
        df = pd.concat(self._rows, ignore_index=True)
        for k, v in self.labels.items():
            df[k] = v
        return df

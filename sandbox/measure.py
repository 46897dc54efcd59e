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
        geo = step_geometry(w_before.reshape(-1, w_before.shape[-1]),
                            w_after.reshape(-1, w_after.shape[-1]))
        # one host transfer per record: the quantities stacked as (4, replicas)
        stacked = torch.stack([v.detach().reshape(-1) for v in geo.values()]).double().cpu()
        if self.per_replica:
            n = stacked.shape[1]
            self._rows.append(pd.DataFrame({"step": step, "replica": np.arange(n),
                                            **dict(zip(geo, stacked.numpy()))}))
            return
        n = stacked.shape[1]
        if n > 1:
            qs = torch.quantile(stacked, torch.tensor([0.05, 0.95], dtype=stacked.dtype), dim=1)
            std = stacked.std(dim=1)
        else:
            qs, std = stacked.T.repeat(2, 1), torch.zeros(len(geo), dtype=stacked.dtype)
        mean = stacked.mean(dim=1)
        for i, q in enumerate(geo):
            self._rows.append({"step": step, "quantity": q, "mean": float(mean[i]),
                               "std": float(std[i]), "q05": float(qs[0, i]),
                               "q95": float(qs[1, i]), "n": n})

    def frame(self) -> pd.DataFrame:
        if not self._rows:
            return pd.DataFrame()
        if self.per_replica:
            df = pd.concat(self._rows, ignore_index=True)
        else:
            df = pd.DataFrame.from_records(self._rows)
        for k, v in self.labels.items():
            df[k] = v
        return df

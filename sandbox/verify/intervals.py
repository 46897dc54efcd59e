"""95% intervals of noisy measurements, for the verdict rule of :func:`sandbox.verify.base.verdict`.

Every measurement that depends on noise reports an interval, and the verdict is PASS or FAIL only
when that interval lies wholly inside or wholly outside the tolerance band. The intervals:

- :func:`jackknife` — replicas of a toy run are independent; they are split into G groups and a
  statistic (any function of the run's table: an rms over a window, a fitted slope, a ratio of
  growths) is recomputed with each group left out. The delete-one-group jackknife gives its
  standard error whatever the statistic's form and whatever the correlation along a trajectory
  (each replica's whole trajectory stays in one group); the interval is Student's t with G − 1
  degrees of freedom.
- :func:`pooled_batch_means` — long correlated series (a layer's Δ_t in network runs, one per
  seed): each is cut into contiguous blocks whose mean squares are nearly independent when a
  block is longer than the correlation time; the rms's interval follows from theirs (t with
  blocks − 1 dof), and fewer than two blocks give no interval (INCONCLUSIVE).
- :func:`slope_interval` — a least-squares slope with its standard error (t with n − 2 dof).
- :func:`proportion_interval` — a precision or a recall (Wilson score interval).
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping

import numpy as np
from scipy import stats

from .base import LEVEL

NAN_INTERVAL = (float("nan"), float("nan"))  # an exact measurement: no interval
# a noisy measurement whose interval cannot be estimated (too few independent blocks): no
# tolerance band contains it or excludes it, so its verdict is INCONCLUSIVE
INCONCLUSIVE_INTERVAL = (float("-inf"), float("inf"))


def t_interval(value: float, se: float, dof: float, level: float = LEVEL) -> tuple[float, float]:
    """``value ± t_{dof} · se`` (NaN when the error is not finite or dof < 1)."""
    if not (np.isfinite(value) and np.isfinite(se)) or dof < 1:
        return NAN_INTERVAL
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * float(se)
    return float(value) - half, float(value) + half


def jackknife(full: Mapping[str, float], leave_one_out: Iterable[Mapping[str, float]],
              level: float = LEVEL) -> dict[str, tuple[float, float]]:
    """Per key of ``full`` (the statistics on all groups), the t interval from the delete-one-group
    jackknife values ``leave_one_out`` (one mapping per left-out group):
    se² = (G − 1)/G · Σ_g (θ_(g) − θ̄)²."""
    loo = list(leave_one_out)
    g = len(loo)
    out = {}
    for key, value in full.items():
        vals = np.array([float(m.get(key, np.nan)) for m in loo])
        if g < 2 or not np.isfinite(vals).all():
            out[key] = NAN_INTERVAL
            continue
        se = math.sqrt((g - 1) / g * float(((vals - vals.mean()) ** 2).sum()))
        out[key] = t_interval(value, se, g - 1, level)
    return out


def jackknife_stat(stat: Callable, full_data, groups: Iterable, level: float = LEVEL) -> dict:
    """``stat(data) -> {name: value}`` on ``full_data`` and on each leave-one-group-out data set
    of ``groups``; returns {name: (value, (low, high))}."""
    full = stat(full_data)
    ints = jackknife(full, (stat(d) for d in groups), level)
    return {k: (float(v), ints[k]) for k, v in full.items()}


def pooled_batch_means(series: list, block: int, level: float = LEVEL
                       ) -> tuple[float, tuple[float, float], int]:
    """(rms, interval, blocks) of several independent correlated series (one per seed) cut
    into contiguous blocks of ``block`` records each (a series' last incomplete block is
    dropped from the interval, not from the rms). The interval is the batch-means one over all
    blocks; fewer than 2 blocks give :data:`INCONCLUSIVE_INTERVAL`."""
    xs = [np.asarray(x, dtype=float) for x in series]
    xs = [x[np.isfinite(x)] for x in xs]
    allx = np.concatenate(xs) if xs else np.array([])
    if not allx.size:
        return float("nan"), INCONCLUSIVE_INTERVAL, 0
    mean_sq = float(np.mean(allx ** 2))
    ms = [float(np.mean(x[i:i + block] ** 2)) for x in xs for i in range(0, len(x) - block + 1, block)]
    if len(ms) < 2:
        return math.sqrt(mean_sq), INCONCLUSIVE_INTERVAL, len(ms)
    lo, hi = t_interval(mean_sq, float(np.std(ms, ddof=1) / np.sqrt(len(ms))), len(ms) - 1, level)
    return math.sqrt(mean_sq), (math.sqrt(max(lo, 0.0)), math.sqrt(hi)), len(ms)


def slope_interval(slope: float, se: float, points: int, level: float = LEVEL) -> tuple[float, float]:
    """A least-squares slope's interval from its standard error over ``points`` points."""
    return t_interval(slope, se, points - 2, level)


def proportion_interval(successes: int, trials: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaN for no trials)."""
    if trials <= 0:
        return NAN_INTERVAL
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = successes / trials
    den = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / den
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def ratio_interval(a: float, a_interval, b: float, b_interval) -> tuple[float, float]:
    """Interval of a/b for two independent measurements with their intervals: the relative
    half-widths add in quadrature (first-order error propagation, the intervals read as
    symmetric)."""
    try:
        ha = (a_interval[1] - a_interval[0]) / 2 / abs(a)
        hb = (b_interval[1] - b_interval[0]) / 2 / abs(b)
    except (TypeError, ZeroDivisionError):
        return NAN_INTERVAL
    if not (np.isfinite(ha) and np.isfinite(hb)):
        return NAN_INTERVAL
    r, h = a / b, math.hypot(ha, hb)
    return r * (1 - h), r * (1 + h)

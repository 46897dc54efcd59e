"""Estimators on probe tables: equilibrium angular step, log-log rates, detection scores.

All take tidy probe tables (:meth:`sandbox.probes.ScaleInvarianceProbe.frame`) and return numbers
or small tables; none trains anything.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def rms(x) -> float:
    """Root mean square, sqrt(mean(x²)) — the theory's angles are rms values over steps/replicas."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.sqrt(np.mean(x * x))) if x.size else float("nan")


def window_rms(df: pd.DataFrame, start: int, stop: int, column: str = "delta") -> pd.Series:
    """Per layer: rms of ``column`` over the recorded steps in [start, stop)."""
    w = df[(df.step >= start) & (df.step < stop)]
    return w.groupby("layer")[column].apply(rms)


def log_binned(t, y, lo: float, hi: float, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Geometric-mean time and rms of ``y`` in ``bins`` log-spaced bins of [lo, hi] (empty bins
    dropped): every decade weighs the same in a log-log fit, and the per-step noise of Δ_t is
    averaged within a bin."""
    t, y = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
    edges = np.geomspace(lo, hi, bins + 1)
    tb, yb = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (t >= a) & (t < b) & np.isfinite(y)
        if sel.any():
            tb.append(float(np.exp(np.mean(np.log(t[sel])))))
            yb.append(rms(y[sel]))
    return np.asarray(tb), np.asarray(yb)


def loglog_slope(t, y) -> tuple[float, float]:
    """Least-squares slope of log y against log t and its standard error (NaN if < 3 points)."""
    t, y = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
    ok = (t > 0) & (y > 0) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan"), float("nan")
    lx, ly = np.log(t[ok]), np.log(y[ok])
    (slope, icept), cov = np.polyfit(lx, ly, 1, cov=True)
    return float(slope), float(np.sqrt(cov[0, 0]))


def detection_scores(df: pd.DataFrame) -> dict[str, float]:
    """Precision and recall of AdamP's test (``detected > 0``) against the architecture's ground
    truth (``scale_invariant``), over every recorded (step, layer, replica) with a gradient.

    precision = TP/(TP + FP) (NaN when nothing was detected), recall = TP/(TP + FN) (NaN when
    nothing is scale-invariant); also the counts.
    """
    d = df[df["detected"].notna()]
    det = d["detected"].astype(int) > 0
    truth = d["scale_invariant"].astype(bool)
    tp, fp, fn = int((det & truth).sum()), int((det & ~truth).sum()), int((~det & truth).sum())
    return {"precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "tp": tp, "fp": fp, "fn": fn, "n": int(len(d))}


def detection_by_layer(df: pd.DataFrame) -> pd.DataFrame:
    """Per layer: ground truth, fraction of records where the test fired, median and max of
    max-row |cos(w, g)| relative to the channel-view threshold."""
    d = df[df["detected"].notna()].assign(fired=lambda x: x["detected"].astype(int) > 0,
                                          margin=lambda x: x["cos_channel"] / x["thr_channel"])
    return d.groupby("layer").agg(scale_invariant=("scale_invariant", "first"),
                                  fired=("fired", "mean"), margin_median=("margin", "median"),
                                  margin_max=("margin", "max"), records=("fired", "size")).reset_index()

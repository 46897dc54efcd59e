"""What a claim family needs besides its physics: claim selection, progress, result rows, and
tidy tables appended to disk as they are produced.

- :func:`claim_selected` — does ``cfg.only`` (an fnmatch pattern on claim ids) select a claim?
- :func:`progress` — iterate work items through ``cfg.progress`` (the runner's shared bar).
- :func:`make_row` — one row with :data:`~sandbox.verify.base.ROW_COLUMNS`, its verdict from
  :func:`~sandbox.verify.base.verdict` (the one verdict rule; a noisy measurement passes its
  95% interval), and status/citation from ``theory.catalogue`` (the longest
  catalogue id that prefixes the claim id, e.g. ``identity.gd`` for ``identity.gd``).
- :class:`TidyLog` — a CSV that grows by appended DataFrames (a crash loses nothing).
"""
from __future__ import annotations

import fnmatch
import math
from typing import Iterable

import pandas as pd

from sandbox.tidy_log import TidyLog  # noqa: F401  (re-exported: the families use it from here)

from .base import ROW_COLUMNS, VerifyConfig, verdict


def claim_selected(cfg: VerifyConfig, claim: str) -> bool:
    """True when no ``--only`` pattern is set or the claim id matches it (fnmatch)."""
    return cfg.only is None or fnmatch.fnmatchcase(claim, cfg.only)


def progress(cfg: VerifyConfig, items: Iterable, desc: str = "") -> Iterable:
    """``items`` wrapped in the runner's progress factory (plain iteration when there is none)."""
    items = list(items)
    if cfg.progress is None:
        return items
    return cfg.progress(items, desc=desc)


def catalogue_entry(claim: str) -> tuple[str, str]:
    """(status, citation) of the longest ``theory.catalogue`` id that prefixes ``claim``;
    ('derived', '') when the catalogue has no such entry."""
    try:
        from theory.catalogue import CLAIMS
    except ImportError:  # the theory package is optional for the plumbing
        return "derived", ""
    best = None
    for c in CLAIMS:
        if claim == c.id or claim.startswith(c.id + "."):
            if best is None or len(c.id) > len(best.id):
                best = c
    return (best.status, best.citation) if best else ("derived", "")


def make_row(family: str, claim: str, rule: str, setting: str, predicted: float,
             measured: float, tolerance: float, error_kind: str = "relative",
             status: str | None = None, note: str = "",
             interval: tuple[float, float] | None = None) -> dict:
    """One result row. ``status`` defaults to the catalogue's; 'open' rows are REPORTED.

    ``interval``: the 95% interval (low, high) of a measurement that depends on noise; the
    verdict is then decided by :func:`~sandbox.verify.base.verdict` from the whole interval
    (PASS / FAIL only when it is decisive, else INCONCLUSIVE). None for an exact measurement."""
    status = status or catalogue_entry(claim)[0]
    predicted = float("nan") if predicted is None else float(predicted)
    measured = float(measured)
    low, high = (float("nan"), float("nan")) if interval is None else map(float, interval)
    if math.isnan(measured):
        err, v = float("nan"), ("REPORTED" if status == "open" else "FAIL")
        note = (note + "; " if note else "") + "measurement is NaN"
    else:
        err, v = verdict(predicted, measured, tolerance, status, error_kind, low, high)
    return {"family": family, "claim": claim, "rule": rule, "setting": setting,
            "predicted": predicted, "measured": measured, "measured_lo": low,
            "measured_hi": high, "error": err,
            "error_kind": error_kind if not math.isnan(predicted) else "",
            "tolerance": tolerance, "verdict": v, "status": status, "note": note}


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(ROW_COLUMNS))


def setting_text(**items) -> str:
    """``key=value`` pairs, compact (floats with 4 significant digits)."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, (tuple, list)):
            return "(" + ",".join(fmt(x) for x in v) + ")"
        return str(v)
    return " ".join(f"{k}={fmt(v)}" for k, v in items.items())

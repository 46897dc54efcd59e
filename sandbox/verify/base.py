"""The claim-family interface of ``verify``.

Each claim family is a module ``sandbox.verify.families.<name>`` exposing

- ``TITLE: str`` — one line, e.g. "Effective step without weight decay (theory §2)";
- ``run(cfg: VerifyConfig) -> pandas.DataFrame`` — one row per (claim, rule, measured point) with
  the columns :data:`ROW_COLUMNS`; it saves the raw measurements it plots (tidy tables) under
  ``cfg.family_dir(name)`` as it produces them;
- ``plot(results: DataFrame, cfg: VerifyConfig) -> list[pathlib.Path]`` — seaborn figures
  (PNG) drawn from the saved results: predicted as lines, measured as points with bands over
  replicas, log-log axes where a rate is claimed.

A family module that does not exist (yet) is skipped by the runner.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# The order in which families run and appear in the report.
FAMILIES = ("identities", "asymptotes", "equilibria", "schedules", "invariances", "escape", "nets")

ROW_COLUMNS = (
    "family", "claim", "rule", "setting", "predicted", "measured", "measured_lo", "measured_hi",
    "error", "error_kind", "tolerance", "verdict", "status", "note",
)
# error_kind: "relative" (|m − p|/|p|), "absolute", "exponent" (fitted minus predicted exponent),
# or "" for REPORTED rows without a prediction. measured_lo/measured_hi: the 95% interval of a
# measurement that depends on noise (NaN for an exact one: identities, round-off checks).
VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE", "REPORTED")
LEVEL = 0.95  # the confidence level of every measured interval


@dataclass
class VerifyConfig:
    quick: bool = False
    device: str = "cpu"
    out: Path = Path("results/verify")
    seed: int = 0
    only: str | None = None  # claim-id pattern (fnmatch), None for all
    progress: Callable | None = None  # tqdm-like factory; None for silent
    extra: dict = field(default_factory=dict)

    def family_dir(self, family: str) -> Path:
        d = Path(self.out) / family
        d.mkdir(parents=True, exist_ok=True)
        return d


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def tolerance_band(predicted: float, tolerance: float, kind: str = "relative") -> tuple[float, float]:
    """The measured values that agree with ``predicted``: ``predicted ± tolerance`` (times
    ``|predicted|`` for a relative tolerance with a non-zero prediction)."""
    half = tolerance * abs(predicted) if kind == "relative" and predicted != 0 else tolerance
    return predicted - half, predicted + half


def verdict(predicted: float, measured: float, tolerance: float, status: str = "published",
            kind: str = "relative", low: float | None = None,
            high: float | None = None) -> tuple[float, str]:
    """(error, verdict): THE verdict rule of every table and summary (verify, the notebooks, the
    escape experiment's decisions).

    - status 'open', or no prediction: REPORTED whatever the numbers say;
    - an exact measurement (no interval: ``low``/``high`` None or NaN): PASS when the error is
      within the tolerance, else FAIL;
    - a measurement that depends on noise comes with its 95% interval [low, high]: PASS when the
      whole interval lies inside the tolerance band ``predicted ± tolerance`` (see
      :func:`tolerance_band`), FAIL when the whole interval lies outside it, and otherwise
      INCONCLUSIVE — the data cannot decide, and the row shows the numbers.

    ``kind='relative'``: error = |m − p|/|p|; ``'absolute'``: |m − p|; ``'exponent'``: |m − p|
    where both are fitted/predicted exponents.
    """
    if _nan(predicted):
        return float("nan"), "REPORTED"
    diff = abs(measured - predicted)
    err = diff / abs(predicted) if kind == "relative" and predicted != 0 else diff
    if status == "open":
        return err, "REPORTED"
    if _nan(low) or _nan(high):
        return err, ("PASS" if err <= tolerance else "FAIL")
    lo_band, hi_band = tolerance_band(predicted, tolerance, kind)
    low, high = min(low, measured), max(high, measured)
    if lo_band <= low and high <= hi_band:
        return err, "PASS"
    if high < lo_band or low > hi_band:
        return err, "FAIL"
    return err, "INCONCLUSIVE"


def verdict_counts(verdicts) -> str:
    """'n PASS, n FAIL, n INCONCLUSIVE, n REPORTED' for an iterable of verdicts: the one summary
    line of every table."""
    verdicts = list(verdicts)
    return ", ".join(f"{sum(v == name for v in verdicts)} {name}" for name in VERDICTS)

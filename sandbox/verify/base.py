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
FAMILIES = ("identities", "asymptotes", "equilibria", "invariances", "escape", "nets")

ROW_COLUMNS = (
    "family", "claim", "rule", "setting", "predicted", "measured", "error", "error_kind",
    "tolerance", "verdict", "status", "note",
)
# error_kind: "relative" (|m − p|/|p|), "absolute", "exponent" (fitted minus predicted exponent),
# or "" for REPORTED rows without a prediction.
VERDICTS = ("PASS", "FAIL", "REPORTED")


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


def verdict(predicted: float, measured: float, tolerance: float, status: str = "published",
            kind: str = "relative") -> tuple[float, str]:
    """(error, verdict). Claims with status 'open' are REPORTED whatever the numbers say.

    ``kind='relative'``: error = |m − p|/|p|; ``'absolute'``: |m − p|; ``'exponent'``: |m − p|
    where both are fitted/predicted exponents.
    """
    if predicted is None or (isinstance(predicted, float) and math.isnan(predicted)):
        return float("nan"), "REPORTED"
    diff = abs(measured - predicted)
    err = diff / abs(predicted) if kind == "relative" and predicted != 0 else diff
    if status == "open":
        return err, "REPORTED"
    return err, ("PASS" if err <= tolerance else "FAIL")

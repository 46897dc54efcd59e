r"""Escape rates from first-passage steps: censored exponential (geometric) MLE with exact intervals.

A particle's first-passage step ``T_i`` is the first optimizer step after which it is past the
barrier (1-based), or 0 when it never got there within the cap ``max_steps`` (right-censored).

**Quasi-stationary rate.** Kramers' rate is the escape hazard once the particles have
equilibrated inside the well (and the optimizer's statistics — Adam's or root-free Adam's ``v``,
Adai's ``v̄`` — have settled). The first ``burn_in`` steps are therefore left out
(left truncation): only particles still inside at ``burn_in`` are at risk, and each contributes
the steps it spent at risk after it. With ``n`` escapes in ``(burn_in, max_steps]`` and the total
exposure ``S = Σ_i (min(T_i, max_steps) − burn_in)`` over the particles at risk, the maximum
likelihood estimate of a constant per-step hazard is ``Γ̂ = n/S`` (exact for the geometric law,
the discrete-time exponential; e.g. Lawless, *Statistical Models and Methods for Lifetime
Data*, 2nd ed., 2003, §2.2). The 95% interval is the exact (Garwood) Poisson interval on ``n``
given the exposure,

.. math::
    \Big[\tfrac{1}{2S}\chi^2_{2n,\,0.025},\ \tfrac{1}{2S}\chi^2_{2n+2,\,0.975}\Big],

which is exact for exponential waiting times with type-I censoring ("total time on test",
Lawless §3.5; Garwood, Biometrika 1936). The delta-method standard error of ``log Γ̂`` is
``1/√n``; fits weight ``−log Γ̂`` by ``n``.

**Constant-hazard check.** The window after the burn-in is split in two halves; the ratio of the
two halves' rates (late/early) should be 1 for a quasi-stationary escape. Its 95% interval comes
from the binomial split of the escapes given the two exposures (conditional test; Clopper–Pearson).
A ratio far from 1 flags a transient (optimizer statistics still drifting) or a depleting population.
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def poisson_rate_interval(n, exposure, level: float = 0.95):
    """Exact (Garwood) interval for a rate ``n/exposure``; arrays broadcast. n = 0 gives lo = 0."""
    n = np.asarray(n, dtype=float)
    exposure = np.asarray(exposure, dtype=float)
    alpha = 1.0 - level
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(n > 0, stats.chi2.ppf(alpha / 2, 2 * n) / (2 * exposure), 0.0)
        hi = stats.chi2.ppf(1 - alpha / 2, 2 * n + 2) / (2 * exposure)
    return lo, hi


def escape_rate(first_passage, max_steps: int, burn_in: int = 0, level: float = 0.95) -> dict:
    """The per-step escape rate of one group of particles, with its interval and diagnostics.

    ``first_passage``: integer steps (1..max_steps) of the first passage, 0 for none (censored).
    Returns a dict: ``particles``, ``early`` (escapes at or before ``burn_in``), ``at_risk``,
    ``n_escaped`` (after the burn-in), ``exposure`` (particle-steps at risk), ``rate``, ``rate_lo``,
    ``rate_hi``, ``neg_log_rate`` (−log Γ̂), its interval ``nlr_lo``/``nlr_hi``, ``se_log`` (1/√n),
    ``escaped_fraction`` (by the cap), ``hazard_ratio`` (late/early half) with ``hr_lo``/``hr_hi``,
    and ``mean_first_passage`` (mean over the particles that escaped, a censored-biased number
    kept for reference only).
    """
    t = np.asarray(first_passage, dtype=np.int64).reshape(-1)
    if max_steps < 1 or not 0 <= burn_in < max_steps:
        raise ValueError(f"need max_steps >= 1 and 0 <= burn_in < max_steps; got max_steps="
                         f"{max_steps!r}, burn_in={burn_in!r}")
    if t.size and (t.min() < 0 or t.max() > max_steps):
        raise ValueError(f"first-passage steps must lie in [0, max_steps={max_steps}] (0 = none); "
                         f"got range [{t.min()}, {t.max()}]")
    escaped = t > 0
    end = np.where(escaped, t, max_steps)
    risk = end > burn_in
    events = escaped & risk
    n = int(events.sum())
    exposure = float((end[risk] - burn_in).sum())
    rate = n / exposure if exposure > 0 else float("nan")
    lo, hi = poisson_rate_interval(n, exposure, level)
    # constant-hazard check on the two halves of (burn_in, max_steps]
    mid = burn_in + (max_steps - burn_in) // 2
    n1 = int((events & (end <= mid)).sum())
    n2 = n - n1
    s1 = float((np.minimum(end[risk], mid) - burn_in).sum())
    s2 = float(np.clip(end[risk] - mid, 0, None).sum())
    hr, hr_lo, hr_hi = _rate_ratio(n1, s1, n2, s2, level)
    with np.errstate(divide="ignore"):
        return {
            "particles": int(t.size), "early": int((escaped & ~risk).sum()), "at_risk": int(risk.sum()),
            "n_escaped": n, "exposure": exposure, "rate": rate, "rate_lo": float(lo),
            "rate_hi": float(hi), "neg_log_rate": -np.log(rate) if n > 0 else float("nan"),
            "nlr_lo": -np.log(hi), "nlr_hi": -np.log(lo) if n > 0 else float("inf"),
            "se_log": 1.0 / np.sqrt(n) if n > 0 else float("inf"),
            "escaped_fraction": float(escaped.mean()) if t.size else float("nan"),
            "hazard_ratio": hr, "hr_lo": hr_lo, "hr_hi": hr_hi,
            "mean_first_passage": float(t[escaped].mean()) if escaped.any() else float("nan"),
        }


def _rate_ratio(n1: int, s1: float, n2: int, s2: float, level: float):
    """Ratio of two Poisson rates (n2/s2)/(n1/s1) with the conditional (Clopper–Pearson) interval."""
    if s1 <= 0 or s2 <= 0 or n1 + n2 == 0:
        return float("nan"), float("nan"), float("nan")
    n, alpha = n1 + n2, 1.0 - level
    p_lo = stats.beta.ppf(alpha / 2, n2, n1 + 1) if n2 > 0 else 0.0
    p_hi = stats.beta.ppf(1 - alpha / 2, n2 + 1, n1) if n1 > 0 else 1.0
    odds = s1 / s2

    def to_ratio(p):
        return p / (1.0 - p) * odds if p < 1 else float("inf")

    ratio = (n2 / s2) / (n1 / s1) if n1 > 0 else float("inf")
    return float(ratio), float(to_ratio(p_lo)), float(to_ratio(p_hi))

r"""Paired comparisons of rules over seeds: the difference, its interval, a test, the power.

Seed s gives every rule the same initial weights and the same data order
(:mod:`sandbox.training.data_order`), so the runs of two rules with one seed form a PAIR, and the
seed-to-seed variation they share cancels in their difference. For two rules A and B and a
metric x (final test accuracy or loss), with the n seeds on which neither diverged:

- :math:`d_s = x_A(s) - x_B(s)`, mean :math:`\bar d`, standard deviation :math:`s_d` (n − 1);
- the 95% interval :math:`\bar d \pm t_{0.975,\,n-1}\, s_d/\sqrt n`;
- the **paired t-test** (Student 1908; the one-sample t-test on the differences, as
  ``scipy.stats.ttest_rel``): :math:`t = \bar d\,\sqrt n / s_d` on n − 1 degrees of freedom,
  two-sided p. The verdict is read from the interval (equivalently p < 0.05): "A better than
  B", "B better than A" (better = higher accuracy, lower loss), or "not distinguishable with
  n seeds". Holm's step-down adjustment over all the pairs of one metric (Holm 1979) is given
  beside it (``p_holm``), for a reader who wants the family-wise rate; the verdict is per pair;
- the **detectable difference** (the run's power, a sensitivity analysis, Cohen 1988 ch. 2): the
  smallest true mean difference δ that a two-sided paired t-test at α = 0.05 on n seeds detects
  with probability 80%, given the observed :math:`s_d`. Under the normal model the statistic
  follows the noncentral t distribution with n − 1 degrees of freedom and noncentrality
  :math:`\delta\sqrt n/s_d`; δ solves

  .. math:: P\big(|T_{n-1}(\delta\sqrt n/s_d)| > t_{1-\alpha/2,\,n-1}\big) = 0.8,

  close to the textbook form :math:`\delta \approx (t_{1-\alpha/2,\,n-1} + t_{0.8,\,n-1})\,
  s_d/\sqrt n` (within 2% for n ≥ 5). It uses the observed SD of the differences, never the
  observed difference ("observed power" would; Hoenig & Heisey 2001 explain why that says
  nothing).

Few seeds: with one seed no test exists ("needs ≥ 2 seeds"). From two seeds on the t-test is
used; it assumes normal differences, and with n ≤ 5 a distribution-free test could not reach
p < 0.05 at all (the exact sign-flip test's smallest two-sided p is 2/2ⁿ), so few-seed verdicts
rest on that assumption — which is why the detectable difference is printed beside them: with
few seeds it is large. Identical results on every seed (s_d = 0, d̄ = 0) are reported as such.
The same nonzero difference on every seed (s_d = 0: accuracies are multiples of 1/n_test, so
with a few seeds and a small test set this happens) leaves the t statistic undefined; the exact
sign-flip test (Fisher's randomisation test of the paired differences) is used instead, whose p
is then 2/2ⁿ (0.25 with 3 seeds), and no detectable difference is given (no spread to base it on).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.80
# metric -> (label, unit scale for printing, unit, higher is better)
METRICS = {"test_acc": ("test accuracy", 100.0, "pp", True),
           "test_loss": ("test loss", 1.0, "nats", False)}


def power_of(delta: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Probability that the two-sided paired t-test at ``alpha`` on ``n`` differences of SD
    ``sd`` rejects when the true mean difference is ``delta`` (noncentral t)."""
    if n < 2 or not sd > 0:
        return math.nan
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(delta) * math.sqrt(n) / sd
    upper = float(stats.nct.sf(crit, df, nc))
    lower = float(stats.nct.cdf(-crit, df, nc))  # the wrong-sign tail: < 1e-9 once nc > crit + 6;
    # scipy's series returns NaN for it at large nc (df = 1), where it is 0 to double precision
    return upper + (lower if math.isfinite(lower) else 0.0)


def detectable_difference(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference detected with probability ``power`` by a two-sided
    paired t-test at ``alpha`` on ``n`` seeds whose differences have SD ``sd`` (module
    docstring); NaN for n < 2, 0 for sd = 0."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    if sd == 0:
        return 0.0
    approx = (stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd / math.sqrt(n)
    f = lambda d: power_of(d, sd, n, alpha) - power  # noqa: E731  (increasing in d)
    hi = approx * 2
    while f(hi) < 0:
        hi *= 2
    return float(optimize.brentq(f, 1e-12 * sd, hi, xtol=1e-9 * sd))


def detectable_difference_approx(sd: float, n: int, alpha: float = ALPHA,
                                 power: float = POWER) -> float:
    """:math:`(t_{1-\\alpha/2,n-1} + t_{power,n-1})\\,s_d/\\sqrt n`, the textbook form."""
    if n < 2:
        return math.nan
    return float((stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd / math.sqrt(n))


def seeds_needed(sd: float, target: float, alpha: float = ALPHA, power: float = POWER,
                 max_seeds: int = 10_000) -> int:
    """The smallest n ≥ 2 whose :func:`detectable_difference` is ≤ ``target``."""
    if not target > 0:
        raise ValueError(f"invalid target={target!r}: must be > 0")
    n = 2
    while detectable_difference(sd, n, alpha, power) > target:
        n += 1
        if n > max_seeds:
            raise ValueError(f"more than {max_seeds} seeds needed for sd={sd:g}, target={target:g}")
    return n


def paired_test(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True,
                names: tuple[str, str] = ("A", "B"), alpha: float = ALPHA,
                power: float = POWER) -> dict:
    """Statistics of the paired differences ``a - b`` (seed by seed; pairs with a non-finite
    value are left out): n, mean, sd, the (1 − alpha) interval, t, p, the detectable difference
    and the verdict in words (module docstring)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    n = int(d.size)
    A, B = names
    nan = math.nan
    row = {"n": n, "excluded": int((~ok).sum()), "mean_diff": nan, "sd_diff": nan, "ci_low": nan,
           "ci_high": nan, "t": nan, "p": nan, "test": "paired t", "detectable": nan, "verdict": ""}
    if n == 0:
        row["verdict"] = "no seed finished for both"
        return row
    mean = float(d.mean())
    row["mean_diff"] = mean
    if n == 1:
        row["verdict"] = "cannot be tested with 1 seed (needs ≥ 2)"
        return row
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(1 - alpha / 2, n - 1) * sd / math.sqrt(n))
    row.update(sd_diff=sd, ci_low=mean - half, ci_high=mean + half,
               detectable=detectable_difference(sd, n, alpha, power))
    if sd == 0:  # t undefined: the exact sign-flip test (all n signs agree)
        row.update(t=nan, p=min(1.0, 2.0 ** (1 - n)) if mean else 1.0, detectable=nan,
                   ci_low=nan, ci_high=nan, test="sign-flip (s_d = 0)")
    else:
        t = mean * math.sqrt(n) / sd
        row.update(t=t, p=float(2 * stats.t.sf(abs(t), n - 1)))
    if sd == 0 and mean == 0:
        row["verdict"] = f"identical on all {n} seeds"
    elif row["p"] < alpha:
        a_better = (mean > 0) == higher_is_better
        row["verdict"] = f"{A} better than {B}" if a_better else f"{B} better than {A}"
    else:
        row["verdict"] = f"not distinguishable with {n} seeds"
    if row["test"] != "paired t" and mean != 0:
        row["verdict"] += " (the same difference on every seed: exact sign-flip test)"
    return row


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN)."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    if idx.size == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    m = idx.size
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def paired_table(runs: pd.DataFrame, rules: Sequence[str] | None = None,
                 metrics: Sequence[str] = tuple(METRICS), alpha: float = ALPHA,
                 power: float = POWER) -> pd.DataFrame:
    """One row per (metric, pair of rules A, B with A before B in ``rules``): the statistics of
    :func:`paired_test` on the seeds both ran, diverged runs counting as missing (their seeds
    are ``excluded``). ``runs``: :func:`sandbox.compare.summary.run_table`'s rows."""
    if runs.empty:
        return pd.DataFrame()
    rules = list(rules) if rules is not None else list(dict.fromkeys(runs["rule"]))
    rows = []
    for metric in metrics:
        label, scale, unit, higher = METRICS[metric]
        wide = runs.pivot_table(index="seed", columns="rule", values=metric, aggfunc="first",
                                dropna=False)
        for i, a in enumerate(rules):
            for b in rules[i + 1:]:
                if a not in wide or b not in wide:
                    continue
                st = paired_test(wide[a].to_numpy(), wide[b].to_numpy(), higher, (a, b), alpha, power)
                rows.append({"metric": metric, "a": a, "b": b, **st, "unit": unit, "scale": scale})
    table = pd.DataFrame(rows)
    if not table.empty:
        table["p_holm"] = np.nan
        for metric, g in table.groupby("metric", sort=False):
            table.loc[g.index, "p_holm"] = holm(g["p"])
    return table


def format_pairs(table: pd.DataFrame, metrics: Sequence[str] | None = None) -> str:
    """The pairs as text: per metric, mean difference A − B with its 95% interval, p, the
    detectable difference and the verdict."""
    if table.empty:
        return "paired comparisons: no pair of rules with finished runs"
    lines = []
    for metric in (metrics or list(dict.fromkeys(table["metric"]))):
        g = table[table["metric"] == metric]
        if g.empty:
            continue
        label, scale, unit, higher = METRICS[metric]
        digits = 2 if unit == "pp" else 4
        lines.append(f"paired {label} differences A − B ({unit}; seed s = same init and data "
                     f"order; 95% t interval, paired t-test; detectable = 80% power at α = 0.05):")
        lines.append(f"  {'A − B':<17}{'n':>3}  {'mean [95% interval]':<28}{'p':>8}"
                     f"{'detectable':>12}  verdict")
        for _, r in g.iterrows():
            pair = f"{r['a']} − {r['b']}"
            if math.isfinite(r["ci_low"]):
                ci = (f"{r['mean_diff'] * scale:+.{digits}f} [{r['ci_low'] * scale:+.{digits}f}, "
                      f"{r['ci_high'] * scale:+.{digits}f}]")
            elif math.isfinite(r["mean_diff"]):
                ci = f"{r['mean_diff'] * scale:+.{digits}f}"
            else:
                ci = "—"
            p = "—" if not math.isfinite(r["p"]) else (f"{r['p']:.2g}" if r["p"] >= 1e-4 else "<1e-4")
            det = "—" if not math.isfinite(r["detectable"]) else f"{r['detectable'] * scale:.{digits}f}"
            extra = f" ({r['excluded']} seed(s) left out: diverged)" if r["excluded"] else ""
            lines.append(f"  {pair:<17}{r['n']:>3}  {ci:<28}{p:>8}{det:>12}  {r['verdict']}{extra}")
    return "\n".join(lines)

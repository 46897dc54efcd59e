"""AdamP's scale-invariance test (catalogue §4, docs/theory.md): thresholds and round-off margins."""
from __future__ import annotations

import numpy as np
from scipy.special import gammaln


def detection_threshold(row_length, delta=0.1):
    """AdamP fires on a view when max_rows |cos(g_row, w_row)| < delta / sqrt(row_length).

    A scale-invariant row has cos = 0 exactly (identity.orthogonality), so only round-off can
    push it past the threshold. Status: published (Heo et al. ICLR 2021, AdamP sec. 3).
    """
    return delta / np.sqrt(np.asarray(row_length, dtype=float))


def random_abs_cosine(d):
    """E|cos| of two independent isotropic directions in R^d: Gamma(d/2)/(sqrt(pi) Gamma((d+1)/2)).

    ~ sqrt(2/(pi d)) = 0.80/sqrt(d), eight times AdamP's default threshold 0.1/sqrt(d). For a
    gradient uncorrelated with w (cos sqrt(d) ~ N(0, 1)) one row passes with probability
    P(|Z| < delta) ~ 0.08 at delta = .1: the single-row layer view gives ~8% false positives
    per step, the channel view (all n rows must pass) ~0.08^n. A true
    non-scale-invariant layer (classifier) usually has |cos| = O(1). Status: exact.
    """
    d = np.asarray(d, dtype=float)
    return np.exp(gammaln(d / 2) - gammaln((d + 1) / 2)) / np.sqrt(np.pi)


def rounding_abs_cosine(d, unit_roundoff=2.0 ** -8, rows=1):
    """Predicted |cos(w, g)| of an exactly orthogonal pair after rounding both to a format.

    Statement: rounding each element with relative error ~ U(-u, u) (round to nearest,
    std u/sqrt(3)) gives cos ~ N(0, 2 u^2/(3 d)) for weakly correlated elements, so
    rms |cos| = sqrt(2/3) u / sqrt(d); over `rows` rows the maximum is ~ sqrt(2 ln rows)
    times that. bf16 (u = 2^-8): 0.0032/sqrt(d), ~30x below the 0.1/sqrt(d) threshold (still
    ~9x for the max over 1000 rows): final rounding of w and g alone cannot make the test miss a
    scale-invariant weight. A miss under bf16 autocast must come from the bf16 arithmetic of
    the backward pass (the computed gradient is not the gradient of a scale-invariant
    function): open, to be measured. Status: derived here.
    """
    base = np.sqrt(2.0 / 3.0) * unit_roundoff / np.sqrt(np.asarray(d, dtype=float))
    return base * (np.sqrt(2.0 * np.log(rows)) if rows > 1 else 1.0)

"""Norm, angular update and ‖g‖/‖w‖ of a scale-invariant weight along a learning-rate schedule
(docs/theory.md), for SGD(M), AdamW, AdamP, Lion and their corrected forms (Defazio 2025).

Model (noise-driven toy, g = P_perp(xi)/r, xi ~ N(0, sigma^2 I_d); any k in {0, 1}): the applied
direction u_t (before the lr) is a linear filter of the scale-free gradient kicks (SGD's heavy
ball, Adam's EMA with its bias correction; Lion: the sign of one), of energy N^2/r^{2k} per kick
(theory.toy.toy_raw_update_size_sq). The AdamP lemma with a schedule gives, exactly for linear
filters and tangential kicks (w moved by the past steps gamma_s u_s is what correlates it with u_t):

    E r_{t+1}^2 = a_t^2 E r_t^2 + gamma_t sum_{j>=0} (2 - [j=0]) gamma_{t-j} E<u_t, u_{t-j}>,

a_t = 1 - gamma_t l_t the decay's shrink (l_t: decoupled lam s c_t; coupled L2 in a heavy ball:
its DC-filtered lam c, L_t = beta L_{t-1} + (1-tau) lam c_t), c_t = gamma_t/gamma_max for the
corrected forms (AdamC/SGDC) and 1 otherwise. Projected rules (AdamP) add gamma_t^2 E||q_t||^2
only (their update is tangential; M = 1). The lagged cross terms carry the momentum's memory
across a step drop of the lr, and the first terms the momentum's start-up, so the recurrence IS
the quasi-static dynamics with its relaxation lag tau_t = 1/(2(k+1) gamma_t l_t), which grows as
gamma_t -> 0. Then Delta_t = arctan(gamma_t sqrt(E||u_t||^2)/r_t^{k+1}) and, since ||g|| = G/r with
G^2 = (d-1) sigma^2, ||g_t||/||w_t|| = G/r_t^2.

Predictions (checked in tests/test_theory_schedules.py against direct simulation):
- uncorrected rules: the quasi-static target r*^{2(k+1)} = M gamma_t A^2/(2 l) follows gamma_t,
  so ||g||/||w|| = G/r^2 rises as gamma_t decays (SGD at steady state: sqrt(2 lam/gamma_t),
  Defazio's formula; AdamW: ∝ lam/gamma_t); the lag tau_t ∝ 1/gamma_t limits the rise: at the
  end the shrink per step gamma_t lam vanishes and r freezes.
- corrected rules: l_t ∝ gamma_t, so growth and shrink both scale with gamma_t^2 and the target
  r*^{2(k+1)} = M gamma_max A^2/(2 lam) is constant: ||g||/||w|| stays flat, Delta_t ∝ gamma_t.
- projection (AdamP): decay lam wd_ratio (wd_ratio = 0.1 by default) and M = 1. Its tau is
  1/wd_ratio times AdamW's, so over a run of T << tau steps r does not follow the schedule at all
  (the late rise is muted by lag, not corrected: it returns for longer runs); its target norm is
  lower by ((1-b1)/(1+b1))/wd_ratio in r^2 at equal lam. Corrected AdamP (adamc with
  project=True) is flat like AdamC.
Assumptions: noise-dominated tangential gradients; Adam's v tracks E[g^2] (v's lag under a
changing r is not modelled); Delta_t << 1 - beta (checked); gamma l << 1 (checked); r varies
slowly over the momentum memory. Status: derived here (the steady-state ratio sqrt(2 lam/gamma):
Defazio 2025, published). Schedules outside ``schedule()``'s families, Nesterov, Adai, coupled L2
through Adam's preconditioner and k not in {0, 1} raise NotCovered: the sandbox then reports the
measurement without a prediction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .homogeneity import RuleTraits
from .toy import toy_grad_norm_sq_unit, toy_raw_update_size_sq, toy_update_size_sq

KINDS = ("constant", "cosine", "warmup_cosine", "warmup_linear", "step")
MEMORY = 40.0  # kernel length in units of 1/(1 - beta)
MAX_DECAY_STEP = 0.1  # gamma l above this: the small-step expansion is not covered
MAX_ROTATION = 0.5  # Delta_t/(1 - beta) above this: the momentum's correlations are not covered


class NotCovered(ValueError):
    """The theory does not cover this schedule or rule: report the measurement, do not predict."""


@dataclass(frozen=True)
class Schedule:
    kind: str
    gamma: np.ndarray  # gamma_t for t = 0 .. steps-1
    params: dict = field(default_factory=dict)

    @property
    def peak(self) -> float:
        return float(self.gamma.max())


def schedule(kind: str, steps: int, peak: float, *, warmup: int = 0, floor: float = 0.0,
             milestones=(), factor: float = 0.1) -> Schedule:
    """gamma_t of a covered schedule family (t = 0 .. steps-1):
    'constant'; 'cosine' (torch CosineAnnealingLR, T_max = steps, eta_min = floor);
    'warmup_cosine' / 'warmup_linear' (linear warm-up over ``warmup`` steps from peak/warmup, then
    cosine / linear decay to ``floor`` at t = steps); 'step' (peak * factor^(#milestones <= t)).
    Anything else raises NotCovered."""
    if kind not in KINDS:
        raise NotCovered(f"schedule {kind!r} is not covered (covered: {', '.join(KINDS)})")
    if not (steps >= 1 and peak > 0 and 0 <= floor < peak and 0 <= warmup < steps):
        raise NotCovered(f"schedule parameters out of the covered range: steps={steps}, peak={peak}, "
                         f"floor={floor}, warmup={warmup}")
    t = np.arange(steps, dtype=float)
    if kind == "constant":
        g = np.full(steps, float(peak))
    elif kind == "cosine":
        g = floor + (peak - floor) * 0.5 * (1 + np.cos(np.pi * t / steps))
    elif kind == "step":
        if not (0 < factor < 1):
            raise NotCovered(f"step factor {factor} not in (0, 1)")
        g = peak * factor ** np.searchsorted(np.sort(np.asarray(milestones, float)), t, side="right")
    else:
        frac = np.clip((t - warmup) / max(steps - warmup, 1), 0.0, 1.0)
        decay = 0.5 * (1 + np.cos(np.pi * frac)) if kind == "warmup_cosine" else 1.0 - frac
        g = np.where(t < warmup, peak * (t + 1) / max(warmup, 1), floor + (peak - floor) * decay)
    return Schedule(kind, g, dict(steps=steps, peak=peak, warmup=warmup, floor=floor,
                                  milestones=tuple(milestones), factor=factor))


@dataclass
class Trajectory:
    t: np.ndarray
    gamma: np.ndarray
    r: np.ndarray            # rms ||w_t|| before step t
    delta: np.ndarray        # rms angle of step t
    grad_ratio: np.ndarray   # rms ||g_t||/||w_t||
    r_quasi_static: np.ndarray  # the instantaneous equilibrium (no lag); inf where l_t = 0
    tau: np.ndarray          # relaxation time 1/(2(k+1) gamma_t l_t) (inf where 0)
    status: str = "derived"
    reason: str = ""


def _taps(traits: RuleTraits, length: int) -> np.ndarray:
    b = traits.beta
    if traits.momentum_kind == "none" or b == 0.0:
        return np.array([1.0])
    tau = b if traits.momentum_kind == "ema" else float(traits.dampening)
    return (1 - tau) * b ** np.arange(length)


def _overlap(h: np.ndarray, t: np.ndarray, j: int) -> np.ndarray:
    """sum_{i=0}^{n-1} h_{i+j} h_i with n = min(t-j+1, len(h)-j) (kicks start at step 0)."""
    prod = h[j:] * h[:len(h) - j]
    cum = np.concatenate([[0.0], np.cumsum(prod)])
    n = np.clip(t - j + 1, 0, len(prod))
    return cum[n]


def _kernel(traits, steps, sign_betas, bias_correction, stationary=False):
    """K[j, t] = E<u_t, u_{t-j}>/(N^2/r^{2k}) for j = 0..J (0 where t < j), and beta_mem.
    ``stationary``: the filter has run for ever before t = 0 (every overlap complete, no bias
    correction, lags j > t included: the kicks before the start)."""
    t = np.arange(steps) + (10 ** 9 if stationary else 0)
    if sign_betas is not None:
        b1, b2 = sign_betas
        hc = np.concatenate([[1 - b1], b1 * (1 - b2) * b2 ** np.arange(int(MEMORY / (1 - b2)))])
        var = _overlap(hc, t, 0)
        J = len(hc) - 1 if stationary else min(steps - 1, len(hc) - 1)
        K = np.zeros((J + 1, steps))
        K[0] = 1.0
        for j in range(1, J + 1):
            cov = _overlap(hc, t, j)
            valid = t >= j
            rho = np.full(steps, cov[0] / var[0]) if stationary else \
                np.where(valid, cov / np.sqrt(var * np.where(valid, var[t - j], 1.0)), 0.0)
            K[j] = (2 / np.pi) * np.arcsin(np.clip(rho, -1, 1))
        return K, b2
    b = traits.beta
    h = _taps(traits, int(MEMORY / (1 - b)) if b else 1)
    s = 1.0 / (1 - b ** (t + 1)) if (traits.momentum_kind == "ema" and b and bias_correction
                                     and not stationary) else np.ones(steps)
    J = len(h) - 1 if stationary else min(steps - 1, len(h) - 1)
    K = np.zeros((J + 1, steps))
    for j in range(J + 1):
        if stationary:
            K[j] = _overlap(h, t[:1], j)[0]
        else:
            K[j, j:] = s[j:] * s[:steps - j] * _overlap(h, t, j)[j:]
    return K, b


def _decay_rates(traits, gamma, lam, corrected, gamma_max, wd_ratio, stationary=False):
    c = gamma / gamma_max if corrected else np.ones_like(gamma)
    if traits.decay == "none" or lam == 0:
        return np.zeros_like(gamma)
    if traits.decay == "decoupled":
        return lam * traits.decay_scale * (wd_ratio if traits.projected else 1.0) * c
    if traits.projected:
        return np.zeros_like(gamma)  # coupled L2 is radial: projected away
    if float(traits.homogeneity) != 1 and traits.l2_preconditioned:
        raise NotCovered("coupled L2 through Adam's preconditioner (Adam+L2): no schedule theory; "
                         "its equilibrium depends on the gradient norm")
    b = traits.beta
    tau = b if traits.momentum_kind == "ema" else float(traits.dampening)
    gain = 1 - tau if b else 1.0
    # the buffer's DC-filtered decay coefficient (stationary start: at its fixed point)
    out, acc = np.empty_like(gamma), (gain * lam * c[0] / (1 - b) if stationary else 0.0)
    for i, ci in enumerate(c):
        acc = b * acc + gain * lam * ci
        out[i] = acc
    return out


def integrate_schedule(traits: RuleTraits, sched: Schedule, lam: float, d: int, r0: float = 1.0, *,
                       corrected: bool = False, gamma_max: float | None = None,
                       wd_ratio: float = 0.1, sign_betas=None, bias_correction: bool = True,
                       beta2: float | None = 0.999, sigma: float = 1.0,
                       stationary_start: bool = False) -> Trajectory:
    """Predicted rms r_t, Delta_t, ||g_t||/||w_t|| along ``sched`` (see the module docstring).

    ``traits``: the rule's RuleTraits (sandbox.optim.traits.rule_traits, or the theory table);
    ``sign_betas=(b1, b2)``: Lion's sign update (its traits are AdamW's: say it here);
    ``corrected``: AdamC/SGDC's decay lam gamma_t/gamma_max on this tensor (``gamma_max``: default
    the schedule's peak); ``wd_ratio``: AdamP's factor where the projection fires (the toy's
    tangential gradients make it fire every step); ``beta2``: Adam's second-moment EMA (k = 0
    rules without a sign; None: v equal to the current E[g^2]). Its lag is modelled: v averages
    E[g^2] ∝ 1/r^2 over ~1/(1-beta2) steps, so while r grows the kicks are scaled by
    f_t = (1/r_t^2)/V_t, V_t the bias-corrected EMA of 1/r_s^2 (the momentum's shorter memory
    is taken at r_t). ``stationary_start``: the run is picked up mid-training at t = 0 (weight
    norm r0): the momentum and v have run at the lr gamma_0 and norm r0 for ever before (full
    overlaps, no bias correction, v = E[g^2] at r0, the kicks before t = 0 at gamma_0) instead of
    starting from empty buffers. Raises NotCovered outside the model.
    Status: derived.
    """
    if not isinstance(sched, Schedule):
        raise NotCovered("only the schedules built by theory.schedules.schedule() are covered; a "
                         "custom sequence is reported, not predicted")
    k = float(traits.homogeneity)
    if sign_betas is not None and k != 0:
        raise NotCovered("a sign update has homogeneity 0")
    if k not in (0.0, 1.0):
        raise NotCovered(f"homogeneity {k:g} is not covered (root-free k = -1 has no equilibrium)")
    if traits.nesterov or traits.adaptive_inertia:
        raise NotCovered("Nesterov momentum and Adai's per-element inertia are not covered")
    if traits.projected and sign_betas is not None:
        raise NotCovered("projected sign updates are not covered")
    gamma = np.asarray(sched.gamma, dtype=float)
    steps = len(gamma)
    gmax = float(gamma_max) if gamma_max is not None else sched.peak
    ell = _decay_rates(traits, gamma, lam, corrected, gmax, wd_ratio, stationary_start)
    if np.max(gamma * ell) > MAX_DECAY_STEP:
        raise NotCovered(f"gamma*l reaches {np.max(gamma * ell):.3g} > {MAX_DECAY_STEP}: the "
                         "small-step expansion is not covered")
    K, beta_mem = _kernel(traits, steps, sign_betas, bias_correction, stationary_start)
    n2 = float(d) if sign_betas is not None else toy_raw_update_size_sq(traits, d) * \
        (sigma ** 2 if k == 1 else 1.0)
    g2 = toy_grad_norm_sq_unit(d) * sigma ** 2
    unproj = RuleTraits(traits.homogeneity, traits.momentum, traits.momentum_kind)
    w = np.full(K.shape[0], 2.0)
    w[0] = 1.0
    r2 = np.empty(steps + 1)
    delta = np.empty(steps)
    r2[0] = float(r0) ** 2
    d_prev = 0.0
    lag = k == 0 and sign_betas is None and beta2 is not None
    v_acc = 1.0 / r2[0] if stationary_start else 0.0
    before = np.full(K.shape[0], gamma[0])  # the lr of the kicks before t = 0
    for t in range(steps):
        J = K.shape[0] - 1 if stationary_start else min(t, K.shape[0] - 1)
        scale = n2 / r2[t] ** k
        if lag:  # Adam's v: an EMA of E[g^2] ∝ 1/r^2 (bias-corrected)
            v_acc = beta2 * v_acc + (1 - beta2) / r2[t]
            warm = 1.0 if stationary_start else 1 - beta2 ** (t + 1)
            scale *= (1 / r2[t]) / (v_acc / warm)
        energy = K[0, t] * scale  # E||u_t||^2
        if traits.projected:
            corr = toy_update_size_sq(traits, d, d_prev) / toy_update_size_sq(unproj, d)
            energy *= corr
            growth = gamma[t] ** 2 * energy
        else:
            lags = t - np.arange(J + 1)
            past = np.where(lags >= 0, gamma[np.clip(lags, 0, None)], before[:J + 1])
            growth = gamma[t] * scale * np.dot(w[:J + 1] * past, K[:J + 1, t])
        r2[t + 1] = (1 - gamma[t] * ell[t]) ** 2 * r2[t] + growth
        delta[t] = d_prev = math.atan(gamma[t] * math.sqrt(energy) / math.sqrt(r2[t]))
    if beta_mem and np.max(delta) > MAX_ROTATION * (1 - beta_mem):
        i = int(np.argmax(delta))
        raise NotCovered(f"Delta_t reaches {delta[i]:.3g} at step {i} > {MAX_ROTATION}(1 - beta) = "
                         f"{MAX_ROTATION * (1 - beta_mem):.3g}: the momentum's correlations are not "
                         "covered (start from a larger r0 or lower the lr)")
    r = np.sqrt(r2[:steps])
    # instantaneous equilibrium at gamma_t with the stationary kernel: r^{2(k+1)} = gamma n2 S/(2 l)
    S = float(K[0, -1] * toy_update_size_sq(traits, d, d_prev) / toy_update_size_sq(unproj, d)) \
        if traits.projected else float(np.dot(w, K[:, -1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(ell > 0, gamma * n2 * S / (2 * ell), np.inf)
        r_qs = y ** (1 / (2 * (k + 1)))
        tau = np.where(gamma * ell > 0, 1 / (2 * (k + 1) * gamma * ell), np.inf)
    return Trajectory(np.arange(steps), gamma, r, delta, math.sqrt(g2) / r ** 2, r_qs, tau,
                      reason=f"{sched.kind} schedule; corrected={corrected}")


def steady_grad_ratio_sgd(gamma, lam):
    """Defazio's steady state of plain SGD on a normalised layer: ||g||/||w|| = sqrt(2 lam/gamma).
    Status: published (Defazio 2025; van Laarhoven 2017)."""
    return np.sqrt(2 * lam / np.asarray(gamma, dtype=float))


def rise_statistic(gamma, grad_ratio, tail: float = 0.1) -> float:
    """max ``grad_ratio`` over the last ``tail`` of the run / its minimum from the end of the
    lr's peak (the last step at >= 99.9% of the peak) on. > 1: the late-training rise; 1: flat.
    (A minimum, not the value at the peak: a run that starts away from equilibrium has a ratio
    that first falls as r grows.) Applies to a predicted, measured or smoothed series alike."""
    g, ratio = np.asarray(gamma, dtype=float), np.asarray(grad_ratio, dtype=float)
    peak_end = int(np.nonzero(g >= 0.999 * g.max())[0][-1])
    start = int(len(g) * (1 - tail))
    return float(ratio[start:].max() / ratio[peak_end:].min())


def late_rise(traj: Trajectory, tail: float = 0.1) -> float:
    """:func:`rise_statistic` of a predicted trajectory's ||g||/||w||."""
    return rise_statistic(traj.gamma, traj.grad_ratio, tail)

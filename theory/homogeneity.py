"""Rule traits and the effective (angular) step without weight decay (catalogue §2, docs/theory.md).

Everything here is generic in :class:`RuleTraits`, so a new rule gets predictions by
declaring its traits, without new code.

Notation: scale-invariant weight w, r = ||w||, Delta_t = angle(w_t, w_{t+1}); all angular
predictions are root-mean-square values, sqrt(E[Delta_t^2]) over replicas/steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_KINDS = ("none", "heavy_ball", "ema")
_DECAYS = ("coupled", "decoupled", "none")


@dataclass(frozen=True)
class RuleTraits:
    """What the theory needs to know about an update rule.

    homogeneity  k: the update is homogeneous of degree k in the gradient (SGD/Adai 1,
                 Adam 0 with eps -> 0, root-free m/(B v) -1 with damping -> 0).
    momentum     beta (beta1); ignored when momentum_kind == 'none'.
    momentum_kind 'none' | 'heavy_ball' (p = beta p + (1 - dampening) g) | 'ema'
                 (m = beta m + (1 - beta) g).
    projected    the applied update is radially projected (AdamP/SGDP stage).
    decay        'coupled' (L2 added to the gradient), 'decoupled' (w <- w(1 - eta lam s)),
                 or 'none'.
    dampening    heavy-ball dampening (torch SGD); 'ema' is heavy ball with dampening = beta.
    nesterov     Nesterov form d = g + beta p of the heavy-ball buffer.
    decay_scale  extra factor s on decoupled decay (SGDP: 1/(1 - beta)).
    l2_preconditioned  for coupled decay: does the L2 term pass through the preconditioner?
                 (Adam: yes; root-free RMSProp adds it after preconditioning: no.)
    project_buffer the projection is applied in place to the stored buffer (official SGDP
                 without Nesterov); otherwise only the applied update is projected (AdamP).
    adaptive_inertia per-element beta1 driven by v (Adai): momentum holds the isotropic value
                 1 - beta0 and predictions that depend on it are flagged open.
    """

    homogeneity: float
    momentum: float = 0.0
    momentum_kind: str = "none"
    projected: bool = False
    decay: str = "none"
    dampening: float = 0.0
    nesterov: bool = False
    decay_scale: float = 1.0
    l2_preconditioned: bool = True
    project_buffer: bool = False
    adaptive_inertia: bool = False
    name: str = ""

    def __post_init__(self):
        if self.momentum_kind not in _KINDS:
            raise ValueError(f"momentum_kind must be one of {_KINDS}")
        if self.decay not in _DECAYS:
            raise ValueError(f"decay must be one of {_DECAYS}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError("momentum must lie in [0, 1)")

    @property
    def beta(self) -> float:
        """Effective momentum coefficient (0 when there is no momentum)."""
        return 0.0 if self.momentum_kind == "none" else float(self.momentum)


def momentum_filter_sums(traits: RuleTraits) -> tuple[float, float]:
    """(H1, H2) = (sum_j h_j, sum_j h_j^2) of the update filter u_t = sum_j h_j g_{t-j}.

    heavy ball: h_j = (1-tau) beta^j -> H1 = (1-tau)/(1-beta), H2 = (1-tau)^2/(1-beta^2);
    EMA: tau = beta -> H1 = 1, H2 = (1-beta)/(1+beta); Nesterov (d = g + beta p):
    h_0 = 1+beta, h_j = beta^(j+1) -> H1 = 1/(1-beta), H2 = (1+beta)^2 + beta^4/(1-beta^2)
    (torch allows Nesterov only with dampening 0). No momentum: (1, 1).
    H1 is the DC gain (how much a constant input, e.g. coupled L2, is amplified); H2 sets the
    stationary E||u||^2 = H2 E||g||^2 for uncorrelated g. Status: exact (geometric series).
    """
    b = traits.beta
    if traits.momentum_kind == "none" or b == 0.0:
        return 1.0, 1.0
    tau = b if traits.momentum_kind == "ema" else float(traits.dampening)
    if traits.nesterov:
        return (1 - tau) / (1 - b), (1 - tau) ** 2 * ((1 + b) ** 2 + b ** 4 / (1 - b * b))
    return (1 - tau) / (1 - b), (1 - tau) ** 2 / (1 - b * b)


def momentum_factor(traits: RuleTraits) -> float:
    """M: the ratio (growth of r^2 per step) / (squared step eta^2 ||u_t||^2), on average.

    Statement: M = (sum_j h_j)^2 / sum_j h_j^2 for an unprojected update filtered by
    u_t = sum_j h_j g_{t-j}; heavy ball AND EMA both give M = (1+beta)/(1-beta)
    (19 at beta = 0.9); Nesterov gives 1/((1-beta)^2((1+beta)^2 + beta^4/(1-beta^2)))
    (14.2 at 0.9); M = 1 with no momentum or when the update is projected.
    Derivation: for tangential isotropic noise the g_t are uncorrelated, so E||u||^2 =
    H2 E||g||^2, while each kick g_t ends up displacing w by eta H1 g_t in total, nearly
    orthogonally to w (the radius moves slowly), so r^2 grows by eta^2 H1^2 E||g||^2 per
    step. Equivalently, the AdamP lemma r_{t+1}^2 = r_t^2 + eta^2 ||p_t||^2
    + 2 eta^2 sum_{k<t} beta^{t-k} ||p_k||^2 gives (1 + 2 beta/(1-beta)) eta^2 ||p||^2.
    The EMA normalisation (1-beta) multiplies H1^2 and H2 alike and cancels: heavy ball and
    EMA have the same M (their steps differ by 1/(1-beta), not their M). With projection
    r_{t+1}^2 = r_t^2 + eta^2 ||q_t||^2 exactly: M = 1.
    Assumptions: noise uncorrelated across steps; slowly varying radius.
    Status: derived (the heavy-ball case is the AdamP corollary, Heo et al. ICLR 2021).
    Regime: small angular steps (Delta << 1 - beta).
    """
    if traits.projected:
        return 1.0
    h1, h2 = momentum_filter_sums(traits)
    return h1 * h1 / h2


def norm_growth_exponent(traits: RuleTraits) -> float:
    """Exponent a of r_t ~ t^a without weight decay: a = 1/(2(k+1)); inf for k <= -1.

    Statement: r^{2(k+1)} grows linearly in t for k > -1 (SGD r ~ t^{1/4}, Adam r ~ t^{1/2});
    for k = -1 (root-free) r grows geometrically (returned as inf).
    Derivation: ||u|| = A r^{-k}, so d(r^2)/dt = M eta^2 A^2 r^{-2k}; with y = r^{2(k+1)},
    dy/dt = (k+1) r^{2k} d(r^2)/dt = (k+1) M eta^2 A^2, a constant.
    Status: derived (Arora, Li & Lyu, ICLR 2019 for k = 1). Regime: after the transient.
    """
    k = float(traits.homogeneity)
    return np.inf if k <= -1 else 1.0 / (2.0 * (k + 1.0))


def angular_step_asymptote(t, traits: RuleTraits):
    """Delta_t -> 1/sqrt((k+1) M t), independent of eta, for k > -1 and no weight decay.

    Derivation: Delta^2 = eta^2 A^2 / r^{2(k+1)} = eta^2 A^2 / y and y ~ (k+1) M eta^2 A^2 t
    (see norm_growth_exponent); A cancels. SGD 1/sqrt(2t), SGDM/EMA(beta=.9) 1/sqrt(38 t),
    SGDP = SGD (projected, M=1), Adam 1/sqrt(19 t), AdamP 1/sqrt(t).
    Assumptions: noise-dominated (tangential, uncorrelated) gradients; Delta << 1 - beta.
    Transient: the finite-t curve is 1/sqrt((k+1) M (t + t0)); with a small-angle start
    t0 = r0^{2(k+1)}/((k+1) M eta^2 A^2) (angular_step_curve); a large-angle start adds an
    extra offset (e.g. t0 ~ 175 steps for SGDM beta=.9, eta=.1, r0=1, d=64), which is why
    SGDM runs sit ~8% below the asymptote at t = 1k.
    Status: derived (1/sqrt(t): Arora, Li & Lyu 2019; M: AdamP corollary). Returns NaN for
    k <= -1 (no decay of the step, see rootfree_angular_step).
    """
    k = float(traits.homogeneity)
    t = np.asarray(t, dtype=float)
    if k <= -1:
        return np.full_like(t, np.nan)
    return 1.0 / np.sqrt((k + 1.0) * momentum_factor(traits) * t)


def norm_curve(t, r0, eta, A, traits: RuleTraits, lam_eff=0.0):
    """Predicted r_t (rms) from r_0, with or without decay, any homogeneity.

    Statement (k > -1): y = r^{2(k+1)} obeys dy/dt = (k+1)(M eta^2 A^2 - 2 eta lam_eff y):
    y_t = y* + (y_0 - y*) exp(-2(k+1) eta lam_eff t), y* = M eta A^2/(2 lam_eff); for
    lam_eff = 0: y_t = y_0 + (k+1) M eta^2 A^2 t. (k = -1): r_t^2 = r_0^2 rho^t with
    rho = (1 - eta lam_eff)^2 + M eta^2 A^2.
    Inputs: A = scale-free rms size of the applied update, ||u|| = A r^{-k} (theory.toy gives
    A for the noise-driven toy); lam_eff = effective per-step decay rate (see
    theory.equilibrium.effective_decay).
    Derivation: decay shrinks r^2 by (1 - eta lam_eff)^2 ~ 1 - 2 eta lam_eff per step, the
    update adds M eta^2 A^2 r^{-2k}; the substitution y = r^{2(k+1)} makes it linear.
    Status: derived. Regime: small steps, noise-dominated, after the momentum transient.
    """
    k = float(traits.homogeneity)
    t = np.asarray(t, dtype=float)
    m = momentum_factor(traits)
    if k <= -1:
        rho = (1 - eta * lam_eff) ** 2 + m * (eta * A) ** 2
        return r0 * rho ** (t / 2.0)
    y0 = float(r0) ** (2 * (k + 1))
    if lam_eff == 0:
        y = y0 + (k + 1) * m * eta ** 2 * A ** 2 * t
    else:
        ys = m * eta * A ** 2 / (2 * lam_eff)
        y = ys + (y0 - ys) * np.exp(-2 * (k + 1) * eta * lam_eff * t)
    return y ** (1.0 / (2 * (k + 1)))


def angular_step_curve(t, r0, eta, A, traits: RuleTraits, lam_eff=0.0):
    """Predicted rms Delta_t = arctan(eta A / r_t^{k+1}) along norm_curve (transient included).

    For lam_eff = 0 and k > -1 this is 1/sqrt((k+1) M (t + t0)) for large t, with
    t0 = r0^{2(k+1)}/((k+1) M eta^2 A^2). Status: derived; regime as norm_curve.
    """
    r = norm_curve(t, r0, eta, A, traits, lam_eff)
    k = float(traits.homogeneity)
    return np.arctan(eta * A / r ** (k + 1))


# ---- root-free (k = -1) ---------------------------------------------------------------

def rootfree_norm(t, r0, eta, A, lam=0.0, M=1.0):
    """Root-free norm without damping: r_t = r_0 ((1 - eta lam)^2 + M eta^2 A^2)^{t/2}.

    With lam = 0 and M = 1 this is the catalogue's r_0 (1 + eta^2 A^2)^{t/2}.
    Derivation: ||u|| = A r (k = -1): the step is a fixed fraction eta A of the radius and
    (nearly) tangential, so r'^2 = (1 - eta lam)^2 r^2 + M eta^2 A^2 r^2; M from momentum
    cross terms (EMA/heavy ball, unprojected; rfadamw beta1 = .9 gives M = 19, correct to
    O(growth per step / (1-beta))). A is measured (||u_t||/r_t) or from theory.toy.
    Assumptions: damping negligible (B v >> damping, r below rootfree_crossover_radius), v
    tracks E[g^2]. Status: derived. Regime: until the damping crossover.
    """
    t = np.asarray(t, dtype=float)
    rho = (1.0 - eta * lam) ** 2 + M * (eta * A) ** 2
    return r0 * rho ** (t / 2.0)


def rootfree_angular_step(eta, A, lam=0.0):
    """Root-free effective step: Delta = arctan(eta A / (1 - eta lam)), constant in t.

    Derivation: w' = (1 - eta lam) w - eta u with u tangential, ||u|| = A r: tan Delta =
    eta A r/((1 - eta lam) r). It never decays: no 1/sqrt(t) law and no equilibrium (r^2 is
    multiplied by (1 - eta lam)^2 + eta^2 A^2 each step). Status: derived.
    Regime: damping negligible (r below rootfree_crossover_radius).
    """
    return np.arctan(eta * np.asarray(A, dtype=float) / (1.0 - eta * lam))


def rootfree_crossover_radius(G, d, lam):
    """Radius r_c = G/sqrt(d lam) beyond which damping lam dominates B v (rule -> SGD, lr eta/lam).

    Definition of G: G^2 = B r^2 E||g_t||^2, i.e. sqrt(B) times the scale-free rms minibatch
    gradient norm (r ||g|| is independent of r); then the mean per-element preconditioner is
    B v ~ B E||g||^2/d = G^2/(d r^2). (B E||g||^2 estimates the summed per-example Fisher
    diagonal; in the noise-driven toy g = P_perp(xi)/r with B = 1, G^2 = d - 1.)
    Derivation: B v = lam at G^2/(d r^2) = lam. For r >> r_c the update is g/lam: SGD with
    learning rate eta/lam, k = 1, and the 1/sqrt(t) decay of Delta returns.
    Assumptions: elements of v comparable (per-element r_c differ when E[g_i^2] varies).
    Status: derived.
    """
    return np.asarray(G, dtype=float) / np.sqrt(d * lam)


# --- mean field: Adai's momentum factor, the projection lag (derived here) ---------------
def adai_momentum_factor(beta0, ratio_var=0.0):
    r"""M of Adai's per-element EMA for the §2 asymptote Δ_t → 1/sqrt(2 M t) (k = 1).

    Adai's β1,i = 1 − β0 x_i with x_i = v̂_i/v̄; the mean of x over the elements is exactly 1
    (v̄ IS the mean of v̂), so the mean inertia is 1 − β0 whatever the spread (when no clipping).
    For an EMA m_i = β_i m_i + (1−β_i) g_i the DC gain is 1 for every β_i, so each element still
    pushes the radius as plain SGD does (growth of r² = η² E‖g‖² per step), while the step size
    is E‖u‖² = η² Σ_i E[g_i²] (1−β_i)/(1+β_i). Hence, for isotropic noise,

        1/M = mean_i (1−β_i)/(1+β_i) = mean_i β0 x_i/(2 − β0 x_i)
            ≈ β0/(2−β0) + ½ f''(1) Var(x),   f''(1) = 4 β0²/(2 − β0)³,

    M = (2−β0)/β0 = 19 at the default β0 = 0.1 (same as EMA momentum 0.9). ``ratio_var``:
    Var(v̂_i/v̄) — about 2(1−β2)/(1+β2) ≈ 0.01 on the noise toy, a 0.06% correction.
    Status: derived here (mean field; per-element β1 slowly varying and uncorrelated with the
    current gradient). Regime: Δ ≪ β0, no clipping (β0 x_i < 1).
    """
    inv = beta0 / (2.0 - beta0) + 0.5 * 4 * beta0 ** 2 / (2.0 - beta0) ** 3 * ratio_var
    return 1.0 / inv


def projection_lag_coefficient(beta, projected, project_buffer):
    """κ in A_eff² = A²/(1 + κ Δ²): what a projection removes from a lagging momentum buffer.

    The buffer p lags the rotating weight; its radial part relative to w_t is about
    −(β/(1−β)) Δ ‖p‖ (theory.toy.toy_update_size_sq). Projecting only the applied update
    (AdamP, Adai+P, timm SGDP) removes it every step: κ = β²/(1−β)² (81 at β = 0.9). Projecting
    the stored buffer in place (official SGDP) removes only the one-step part β²Δ²‖p‖² per step:
    κ = β²/(1−β²) (4.3 at β = 0.9). Unprojected rules: 0. Status: derived (theory.toy).
    """
    if not projected or not beta:
        return 0.0
    return beta ** 2 / (1 - beta ** 2) if project_buffer else beta ** 2 / (1 - beta) ** 2


def angular_step_mean_field(steps, r0, eta, A, k, M, kappa=0.0):
    r"""Mean-field Δ_t and r_t (rms) for k > −1 without decay, including the projection lag.

    Recursion over steps t = 0..steps−1 for y = r^{2(k+1)} (theory.homogeneity.norm_curve's
    dy/dt = (k+1) M η² A², with the applied update reduced by the projection of a lagging
    buffer, A_eff² = A²/(1 + κ Δ²)):

        Δ_t² (1 + κ Δ_t²) = η² A²/y_t,     y_{t+1} = y_t + (k+1) M η² A²/(1 + κ Δ_t²).

    For κ = 0 this is Δ_t = 1/sqrt((k+1)M(t + t0)), t0 = y_0/((k+1)Mη²A²). For κ > 0 the
    approach to the same asymptote is slow: Δ_t^{-2} ≈ (k+1)(t − κ ln t + const) (M = 1), so at
    finite t the slope of Δ^{-2} is (k+1)(1 − κ/t) — e.g. AdamP (κ = 81) is 10% below its
    asymptotic constant around t = 800. This is the regime condition Δ ≪ 1 − β of §2 made
    quantitative. Returns (Δ_t, r_t) as arrays of length ``steps``. Status: derived here.
    """
    y = np.empty(steps)
    dl = np.empty(steps)
    y[0] = float(r0) ** (2 * (k + 1))
    e2 = (eta * A) ** 2
    for t in range(steps):
        q = e2 / y[t]
        d2 = q if kappa == 0 else (np.sqrt(1 + 4 * kappa * q) - 1) / (2 * kappa)
        dl[t] = np.arctan(np.sqrt(d2))
        if t + 1 < steps:
            y[t + 1] = y[t] + (k + 1) * M * e2 / (1 + kappa * d2)
    return dl, y ** (1 / (2 * (k + 1)))

"""Catalogue of claims (docs/theory.md) for a verify command to iterate over.

Each record names the theory function that computes the prediction (``function``, a name
in the ``theory`` namespace), its status (published / derived / open), citation, regime and
the check tolerance. ``resolve(claim)`` returns the callable.
"""
from __future__ import annotations

from dataclasses import dataclass

P, D, O = "published", "derived", "open"
ADAMP = "Heo et al., AdamP, ICLR 2021"
LIAR = "Li & Arora, ICLR 2020, An exponential learning rate schedule for deep learning"
ALL = "Arora, Li & Lyu, ICLR 2019"
KOS = "Kosson et al., Rotational Equilibrium, ICML 2024"
WAN = "van Laarhoven 2017; Wan et al. 2021, Spherical Motion Dynamics"
XIE21 = "Xie, Sato & Sugiyama, ICLR 2021, A diffusion theory for deep learning dynamics"
ADAI = "Xie et al., ICML 2022, Adaptive Inertia (Adai)"
RF = "Lin et al., ICML 2024, Can we remove the square-root in adaptive gradient methods?"
HERE = "derived here (theory package)"
LION = "Chen et al., NeurIPS 2023 (Lion)"
LAMB = "You et al., ICLR 2020 (LAMB); You, Gitman & Ginsburg 2017 (LARS)"
DEFAZIO = "Defazio 2025, Why Gradients Rapidly Increase Near the End of Training (arXiv 2506.02285)"


@dataclass(frozen=True)
class Claim:
    id: str
    section: int
    statement: str
    status: str
    citation: str
    function: str
    regime: str = ""
    tolerance: str = ""


CLAIMS: list[Claim] = [
    Claim("identity.orthogonality", 1, "<w, grad f(w)> = 0 and grad f(cw) = grad f(w)/c; a k-homogeneous update scales by c^-k", P, ADAMP, "update_scaling", "exact", "round-off"),
    Claim("identity.gd", 1, "r_{t+1}^2 = r_t^2 + eta^2 ||g_t||^2", P, ADAMP, "gd_norm_sq_next", "exact", "round-off"),
    Claim("identity.heavy_ball", 1, "r_{t+1}^2 = r_t^2 + eta^2||p_t||^2 + 2 eta^2 sum_{k<t} beta^{t-k} ||p_k||^2", P, ADAMP, "heavy_ball_norm_sq", "exact, tangential inputs", "round-off"),
    Claim("identity.projected", 1, "r_{t+1}^2 = r_t^2 + eta^2 ||q_t||^2 for q_t = P_perp p_t", P, ADAMP, "projected_norm_sq", "exact", "round-off"),
    Claim("identity.exp_lr", 1, "GD+WD == GD at eta_t = eta (1-eta lam)^{-2t-1}, w_t = (1-eta lam)^t x_t", P, LIAR, "exp_lr_schedule", "exact", "round-off"),
    Claim("identity.exp_lr_momentum", 1, "SGDM+L2 == SGDM at eta alpha^{-2t-1}, x_t = alpha^-t w_t, buffer vt_t = alpha^t (v_t - (1-alpha)/(alpha eta) w_t) incl. at t = 0", P, LIAR + "; buffer map " + HERE, "exp_lr_state_map", "exact; equal zero buffers are NOT equivalent", "round-off"),
    Claim("asymptote.momentum_factor", 2, "M = (1+beta)/(1-beta) for heavy ball AND EMA, 1 when projected", D, ADAMP + " (corollary)", "momentum_factor", "noise-dominated, Delta << 1-beta", "10%"),
    Claim("asymptote.sgd", 2, "Delta_t -> 1/sqrt(2t)", D, ALL, "angular_step_asymptote", "no decay, after transient", "10%"),
    Claim("asymptote.sgdm", 2, "Delta_t -> 1/sqrt(2 M t), M = (1+beta)/(1-beta)", D, ALL + "; " + ADAMP, "angular_step_asymptote", "no decay; transient offset t0 (see angular_step_curve)", "10%"),
    Claim("asymptote.sgdp", 2, "Delta_t -> 1/sqrt(2t) (projection: M = 1)", D, ADAMP, "angular_step_asymptote", "no decay", "10%"),
    Claim("asymptote.adam", 2, "Delta_t -> 1/sqrt(M t)", D, HERE, "angular_step_asymptote", "no decay, eps -> 0", "10%"),
    Claim("asymptote.adamp", 2, "Delta_t -> 1/sqrt(t)", D, HERE, "angular_step_asymptote", "no decay, eps -> 0", "10%"),
    Claim("asymptote.norm_growth", 2, "r^{2(k+1)} grows linearly: r_t^{2(k+1)} = r_0^{2(k+1)} + (k+1) M eta^2 A^2 t", D, HERE, "norm_curve", "no decay", "10%"),
    Claim("asymptote.rootfree", 2, "k = -1: r_t = r_0 (1 + M eta^2 A^2)^{t/2}, Delta = arctan(eta A) constant", D, HERE, "rootfree_angular_step", "damping negligible", "10%"),
    Claim("asymptote.rootfree_crossover", 2, "damping takes over at r ~ G/sqrt(d lam), G^2 = B r^2 E||g||^2", D, HERE, "rootfree_crossover_radius", "order of magnitude", "factor 2"),
    Claim("equilibrium.sgd", 3, "Delta* = sqrt(2 eta lam), r* = (eta E||g~||^2/(2 lam))^{1/4}", P, WAN, "equilibrium_angular_step", "noise-dominated, after ~3 tau", "5%"),
    Claim("equilibrium.sgdm", 3, "L2 in heavy ball: Delta* = sqrt(2 eta lam/(1+beta)), r* = (eta E||g~||^2/(2 lam (1-beta)))^{1/4}", P, WAN + "; " + KOS, "equilibrium_angular_step", "noise-dominated", "5%"),
    Claim("equilibrium.sgdp", 3, "Delta* = sqrt(2 eta lam wd_ratio/(1-beta)), r* = (eta E||g~||^2/(2 lam wd_ratio (1+beta)))^{1/4}", D, HERE, "equilibrium_angular_step", "noise-dominated", "5%"),
    Claim("equilibrium.adamw", 3, "Delta* = sqrt(2 eta lam (1-b1)/(1+b1)), r* = sqrt(eta d/(2 lam))", P, KOS, "equilibrium_angular_step", "noise-dominated, eps -> 0", "5%"),
    Claim("equilibrium.adamp", 3, "Delta* = sqrt(2 eta lam wd_ratio); r* = sqrt(eta d (1-b1)/(2 lam wd_ratio (1+b1)(1 + b1^2 Delta*^2/(1-b1)^2))) (the first-stated norm lacks wd_ratio)", D, HERE, "equilibrium_norm", "noise-dominated, eps -> 0", "5%"),
    Claim("equilibrium.adam_l2", 3, "no fixed Delta*; given the scale-free gradient norm Gt: r*^3 = eta sqrt(d) Gt/(2 lam)", D, KOS + "; conditional form " + HERE, "equilibrium_angular_step", "noise-dominated, lam r^2 << Gt", "10%"),
    Claim("equilibrium.rootfree", 3, "no equilibrium: r^2 x ((1-eta lam)^2 + M eta^2 A^2) per step, Delta = arctan(eta A/(1-eta lam))", D, HERE, "equilibrium_prediction", "damping negligible", "10%"),
    Claim("equilibrium.adai", 3, "open (isotropic heuristic sqrt(2 eta lam beta0/(2-beta0)))", O, ADAI, "adai_isotropic_angular_step", "measure", ""),
    Claim("equilibrium.projection_ratio", 3, "at wd_ratio = 1 projection raises Delta* by sqrt((1+beta)/(1-beta))", D, HERE, "momentum_factor", "noise-dominated", "5%"),
    Claim("equilibrium.time", 3, "tau = 1/(2(k+1) eta lam_eff): AdamW 1/(2 eta lam), SGDM (1-beta)/(4 eta lam), SGDP (1-beta)/(4 eta lam wd_ratio)", D, HERE, "time_to_equilibrium", "linear relaxation of r^{2(k+1)}", "10%"),
    Claim("detection.false_positives", 4, "a weight that is not scale-invariant passes the test only when its radial derivative <W, grad_W L> crosses 0: under weight decay that happens at its norm equilibrium, so false positives arise only on non-invariant decayed weights (precision 1 on every other layer)", D, HERE, "detection_threshold", "fp32, equilibrium runs", "0"),
    Claim("detection.threshold", 4, "scale-invariant rows have cos = 0; bf16 rounding gives rms |cos| ~ 0.0032/sqrt(d) << 0.1/sqrt(d)", D, ADAMP + "; rounding " + HERE, "rounding_abs_cosine", "precision/recall per layer: open under autocast", ""),
    Claim("escape.sgd", 5, "log tau ~ 2 B Delta L/(eta H_a) (law 1/k)", P, XIE21, "predicted_log_escape_time", "Delta L >> T", "slope CI"),
    Claim("escape.heavy_ball", 5, "same 1/H_a law; torch form 2 B (1-beta) Delta L/(eta H_a)", P, ADAI, "predicted_log_escape_time", "Delta L >> T", "slope CI"),
    Claim("escape.adam", 5, "log tau ~ 2 sqrt(B) Delta L/(eta sqrt(H_a)) (law 1/sqrt(k))", P, ADAI, "predicted_log_escape_time", "Delta L >> T", "slope CI"),
    Claim("escape.adai", 5, "log tau ~ 2 B Delta L/(eta H_a) (law 1/k)", P, ADAI, "predicted_log_escape_time", "Delta L >> T", "slope CI"),
    Claim("escape.rootfree", 5, "log tau ~ 2 B Delta L/eta, independent of H_a (law k^0; damping adds 2 B Delta L lam/(eta H_a))", O, HERE, "predicted_log_escape_time", "heuristic", "slope CI"),
    Claim("escape.kramers", 5, "tau = 2 pi/sqrt(H_a |H_b|) exp(Delta L/T), T = eta H/(2B) for SGD", P, "Kramers 1940; " + XIE21, "kramers_escape_time", "Delta L/T >~ 5, eta H << 1", "10%"),
    Claim("invariance.adam_loss_scale", 6, "loss x c scales the update by c^k: Adam invariant, SGD x c, root-free x 1/c", P, "Kingma & Ba 2015; generic " + HERE, "loss_scale_update_factor", "eps -> 0", "round-off"),
    Claim("invariance.rootfree_reparam", 6, "theta = D phi: trajectories map exactly with m -> D m, v_0 -> D^2 v_0 (damping 0); default v_0 = 1/B: mismatch beta2^t (1-D^2)/B", D, HERE, "rootfree_reparam_map", "damping 0", "round-off"),
    Claim("invariance.rootfree_newton", 6, "noisy quadratic, C = H/B: B v -> H (1 + eta/2) (root-free, no momentum)", D, RF + "; exact excess " + HERE, "noisy_quadratic_newton_step", "beta2 -> 1, stationary", "5%"),
    Claim("invariance.stationary_variance", 6, "Var theta: SGD eta/(B(2 - eta H)); root-free eta/(2 B H); Adam ~ eta/(2 sqrt(B H))", D, HERE, "noisy_quadratic_stationary_variance", "beta2 -> 1", "5%"),
    # Lion, LAMB, LARS and the rotational variants (size laws 'sign', 'trust_ratio', 'rotation'; docs/theory.md §7)
    Claim("asymptote.lion", 7, "Lion, no decay: ||u||^2 = d, r_t^2 = r_0^2 + M_lion eta^2 d t, Delta_t = arctan(eta sqrt(d)/r_t) -> 1/sqrt(M_lion t); M_lion = 1 + 2 sum_j (2/pi) arcsin(A b2^{j-1}) (arcsine law, 45.9 at (0.9, 0.99); AdamW's traits say 19)", D, LION + "; M_lion " + HERE, "sign_trust.lion_angular_step_curve", "no decay, Delta << 1-b2", "Delta 10%, M 10%"),
    Claim("asymptote.lamb", 7, "LAMB, no decay: every step has norm eta r, r^2 x (1 + M eta^2) per step (geometric), Delta constant = arccos((2 + (M-1) eta^2)/(2 sqrt(1 + M eta^2))) ~ eta, M = (1+b1)/(1-b1)", D, LAMB + "; " + HERE, "sign_trust.lamb_angular_step_no_decay", "eta^2 M << 1-b1", "Delta 1%, growth 5%"),
    Claim("asymptote.lars", 7, "LARS, no decay: Delta = a/sqrt(1-mu^2), r^2 x (1 + a^2/(1-mu)^2) per step, a = lr trust", O, LAMB + "; " + HERE, "sign_trust.lars_equilibrium", "a/(1-mu) << 1", ""),
    Claim("equilibrium.lion", 7, "Lion, decoupled decay: Delta* = sqrt(2 eta lam/M_lion), r* = sqrt(eta d M_lion/(2 lam)) (Kosson's linearised sqrt(pi/2) sqrt(2 eta lam) sqrt((1-b1)^2 + b1^2 (1-b2)/(1+b2)) is 0.7% above)", D, KOS + "; arcsine-law M " + HERE, "sign_trust.lion_equilibrium", "noise-dominated, Delta* << 1-b2", "5%"),
    Claim("equilibrium.lamb", 7, "LAMB, decay in the trust ratio: Delta* = 2 arcsin(eta/2) ~ eta whatever lam (the decay sets the norm, not the angle); r* = x* D/lam, eta (M + x*^2) = 2 x* sqrt(1 + x*^2)", D, LAMB + "; " + HERE, "sign_trust.lamb_equilibrium", "eta^2 M << 1-b1, noise-dominated", "Delta 1%, r 5%"),
    Claim("equilibrium.lars", 7, "LARS: y*(1+y*) = a/(2(1-mu)), y = lam r^2/G; r* = sqrt(y* G/lam), Delta* = a/((1+y*) sqrt(1-mu^2)), a = lr trust", D, LAMB + "; " + HERE, "sign_trust.lars_equilibrium", "a/(1-mu) << 1, noise-dominated", "5%"),
    Claim("identity.rotational", 7, "rotational step: every neuron's norm stays at its recorded value; Delta_1 = arctan(rho ||d_c||/||d||) per neuron (u_bar_1 = ||d_1||; d_c centred)", D, KOS + "; exact form " + HERE, "rotational.first_step_angle", "exact (weights centred at initialisation, eps = 0)", "round-off"),
    Claim("equilibrium.rotational", 7, "rotational variants: rms Delta_t = arctan(rho kappa f_t) from step 1, kappa = sqrt(1 - 1/L) (zero_mean), f_t the start-up factor of a momentum direction (up to 1.21 at beta = 0.9), no relaxation over 1/(2 eta lam)", D, KOS + " (Delta = rho from step 1); kappa, f_t " + HERE, "rotational.rotational_angular_step", "rows of >= 16 elements", "5%"),
    Claim("schedule.trajectory", 7, "E r_{t+1}^2 = (1 - gamma_t l_t)^2 E r_t^2 + gamma_t sum_j (2 - [j=0]) gamma_{t-j} E<u_t, u_{t-j}>: r_t, Delta_t = arctan(gamma_t |u_t|/r_t^{k+1}), ||g_t||/||w_t|| = G/r_t^2 along a covered schedule (SGD(M), AdamW, AdamP, Lion, AdamC/SGDC)", D, HERE, "integrate_schedule", "noise-dominated, gamma l << 1, Delta << 1 - beta", "r 5%, Delta and ||g||/||w|| 10%"),
    Claim("schedule.late_rise", 7, "||g||/||w|| rises as gamma_t decays (target r*^{2(k+1)} ∝ gamma_t, limited by the lag tau_t ∝ 1/gamma_t); flat under corrected decay l_t ∝ gamma_t; AdamP's rise muted by its 1/wd_ratio longer lag, not corrected", P, DEFAZIO + "; lag and projection " + HERE, "late_rise", "noise-dominated", "10%"),
    Claim("schedule.corrected_delta", 7, "corrected decay: r* constant, so Delta_t ∝ gamma_t once r sits at its target", P, DEFAZIO, "integrate_schedule", "T >> tau", "0.05"),
    Claim("schedule.sgd_steady", 7, "plain SGD at steady state on a normalised layer: ||g||/||w|| = sqrt(2 lam/gamma)", P, DEFAZIO + "; van Laarhoven 2017", "steady_grad_ratio_sgd", "gamma lam << 1", "5%"),
    Claim("schedule.projection_long_run", 7, "AdamP's late rise returns when the run is much longer than its lag 1/(2 gamma lam wd_ratio)", D, HERE, "late_rise", "T >> tau", "10%"),
    Claim("schedule.nets", 7, "per normalised layer of a BN net under cosine: r_t from integrate_schedule picked up mid-run (stationary start, d = the layer's size); ||g||/||w|| = G_t/r_t^2 given the measured scale-free gradient G_t (with G constant the rise is overpredicted: G falls as the loss decreases)", D, HERE, "integrate_schedule", "noise-dominated layers (non-invariant parameters frozen)", "15%"),
    Claim("schedule.not_covered", 7, "schedules outside theory.schedules.schedule() (OneCycle, cyclic, custom) and rules without a schedule theory: measured, never extrapolated", O, HERE, "integrate_schedule", "measure", ""),
]


def get(claim_id: str) -> Claim:
    """The claim with this id (KeyError if absent)."""
    for c in CLAIMS:
        if c.id == claim_id:
            return c
    raise KeyError(claim_id)


def resolve(claim: Claim):
    """The theory function that computes the claim's prediction (``function`` a name in the
    ``theory`` namespace, or ``module.name`` for a module of the package: ``sign_trust.…``)."""
    module, _, name = claim.function.rpartition(".")
    package = __import__("theory." + module if module else "theory")
    return getattr(getattr(package, module) if module else package, name)

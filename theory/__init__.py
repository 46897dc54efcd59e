"""Predictions for momentum optimizers on scale-invariant weights (pure numpy/scipy).

One function per claim of the theory catalogue (docs/theory.md); theory.catalogue.CLAIMS lists
them with status and citation. Modules by topic: identities (§1), homogeneity + toy (§2: the
effective step without decay, its mean field, Adai's momentum factor, the projection lag),
rootfree (§2–3: root-free rules, geometric growth and the damping crossover), equilibrium (§3),
detection (§4), escape + escape_laws (§5), invariance + noisy_quadratic (§6), lowprecision
(bf16 rounding of steps and EMAs), schedules (§7: trajectories along an lr schedule, corrected
decay).
"""
from .detection import detection_threshold, random_abs_cosine, rounding_abs_cosine
from .equilibrium import (Equilibrium, adai_isotropic_angular_step, effective_decay,
                          equilibrium_angular_step, equilibrium_norm, equilibrium_prediction,
                          equilibrium_relaxation, time_to_equilibrium)
from .escape import (effective_temperature, exact_mfpt_1d, kramers_escape_steps, kramers_escape_time,
                     predicted_log_escape_time, predicted_sharpness_law, quartic_double_well)
from .homogeneity import (RuleTraits, adai_momentum_factor, angular_step_asymptote,
                          angular_step_curve, angular_step_mean_field, momentum_factor,
                          momentum_filter_sums, norm_curve, norm_growth_exponent,
                          projection_lag_coefficient, rootfree_angular_step,
                          rootfree_crossover_radius, rootfree_norm)
from .identities import (exp_lr_alpha, exp_lr_decoupled, exp_lr_schedule, exp_lr_state_map,
                         gd_norm_sq_next, heavy_ball_norm_sq, projected_norm_sq, update_scaling)
from .invariance import (loss_scale_update_factor, noisy_quadratic_newton_step,
                         rootfree_init_mismatch, rootfree_reparam_map)
from .lowprecision import bf16_ema_trace, bf16_step_retention, ema_can_decrease, round_bf16
from .noisy_quadratic import noisy_quadratic_grad_sq, noisy_quadratic_stationary_variance
from .rootfree import rootfree_delta_profile, rootfree_stationary
from .schedules import (NotCovered, integrate_schedule, late_rise, rise_statistic, schedule,
                        steady_grad_ratio_sgd)
from .toy import (toy_grad_norm_sq_unit, toy_raw_update_size_sq, toy_update_size,
                  toy_update_size_sq)

__all__ = [n for n in dir() if not n.startswith("_") and n not in (
    "detection", "equilibrium", "escape", "homogeneity", "identities", "invariance",
    "noisy_quadratic", "toy", "lowprecision", "rootfree", "catalogue", "escape_laws", "schedules")]

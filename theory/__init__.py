"""Predictions for momentum optimizers on scale-invariant weights (pure numpy/scipy).

One function per claim of spec/theory.md; theory.catalogue.CLAIMS lists them with status
and citation. Modules: identities (sec. 1), homogeneity + toy (sec. 2), equilibrium
(sec. 3), detection (sec. 4), escape (sec. 5), invariance + noisy_quadratic (sec. 6).
"""
from .detection import detection_threshold, random_abs_cosine, rounding_abs_cosine
from .equilibrium import (Equilibrium, adai_isotropic_angular_step, effective_decay,
                          equilibrium_angular_step, equilibrium_norm, equilibrium_prediction,
                          time_to_equilibrium)
from .escape import (effective_temperature, exact_mfpt_1d, kramers_escape_steps, kramers_escape_time,
                     predicted_log_escape_time, predicted_sharpness_law, quartic_double_well)
from .homogeneity import (RuleTraits, angular_step_asymptote, angular_step_curve,
                          momentum_factor, momentum_filter_sums, norm_curve,
                          norm_growth_exponent, rootfree_angular_step,
                          rootfree_crossover_radius, rootfree_norm)
from .identities import (exp_lr_alpha, exp_lr_schedule, exp_lr_state_map, gd_norm_sq_next,
                         heavy_ball_norm_sq, projected_norm_sq, update_scaling)
from .invariance import (loss_scale_update_factor, noisy_quadratic_newton_step,
                         rootfree_init_mismatch, rootfree_reparam_map)
from .lowprecision_extra import bf16_ema_trace, bf16_step_retention, ema_can_decrease, round_bf16
from .noisy_quadratic import noisy_quadratic_grad_sq, noisy_quadratic_stationary_variance
from .toy import (toy_grad_norm_sq_unit, toy_raw_update_size_sq, toy_update_size,
                  toy_update_size_sq)

__all__ = [n for n in dir() if not n.startswith("_") and n not in (
    "detection", "equilibrium", "escape", "homogeneity", "identities", "invariance",
    "noisy_quadratic", "toy", "lowprecision_extra")]

"""Reusable, notebook-friendly experiments on the toy problems (tidy pandas tables out).

(A rule's theory traits come from :func:`sandbox.optim.traits.rule_traits`, read off its stage chain.)

- :mod:`sandbox.experiments.effective_step`: the noise-driven toy through a real optimizer
  (``run_noise_toy(rule, steps, replicas, d, **hp) -> DataFrame``), and the fits of §2
  (Δ^{-2} slope, log-log exponent, measured momentum factor);
- :mod:`sandbox.experiments.rootfree`: root-free rules — their filter, the lag-corrected
  geometric growth and the damping-crossover profile, the crossover measurements;
- :mod:`sandbox.experiments.weight_decay`: §3 equilibria (settings at a given η·λ_eff,
  predictions, Δ*, r*, relaxation-time fits);
- :mod:`sandbox.experiments.run_cache`: resume support (runs saved under a key).
"""

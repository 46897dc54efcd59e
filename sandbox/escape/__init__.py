"""Flat minima: escape-time experiments for SGD, heavy ball, Adam, Adai and root-free Adam
(issue 4; theory §5, :mod:`theory.escape`).

Notebook use::

    from sandbox.escape import run_escape_grid, fit_laws, decide_laws, predicted_laws
    rates = run_escape_grid(["sgd", "adam", "rfadamw"], ks=[1, 1.41, 2, 2.83, 4], B=8,
                            particles=10_000, max_steps=4000, seed=0)
    fits = fit_laws(rates)                       # −log Γ on 1/k, 1/√k, k⁰: slopes, R²
    decisions = decide_laws(rates, predicted_laws(["sgd", "adam", "rfadamw"], 2.0, 8.0,
                            barrier=0.05, h0=1.0, exponent_ref=4.0))

``python -m sandbox.escape`` runs the full experiment (``--quick`` for the small one).
Modules: :mod:`.potentials` (problems), :mod:`.simulate` (particles through the registry's
optimizers), :mod:`.rates` (escape rates with intervals), :mod:`.laws` (fits and the decision
rule), :mod:`.arms` (rules, lr calibration, predictions), :mod:`.experiment` (the k/B/η sweeps),
:mod:`.plots` (figures). The names below are imported on first use, so that
``python -m sandbox.escape --help`` answers without importing torch.
"""
import importlib

_NAMES = {"ARMS": "arms", "Arm": "arms", "get_arm": "arms", "predicted_laws": "arms",
          "LAWS": "laws", "decide_laws": "laws", "fit_exponent": "laws", "fit_laws": "laws",
          "EscapeProblem": "potentials", "escape_rate": "rates", "run_escape_grid": "simulate",
          "simulate_cell": "simulate"}
__all__ = list(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Scale-invariance probes: a Cockpit-like per-layer instrument (see :mod:`.probe`) and the
ground truth of scale invariance read from a model's module graph (see :mod:`.architecture`).

>>> probe = sandbox.probes.attach(model, opt, schedule=10)     # doctest: +SKIP
>>> ... train ...; probe.frame()                                # doctest: +SKIP
"""
from .architecture import Invariance, numerical_scale_invariance, scale_invariance_ground_truth
from .probe import (COLUMNS, DEFAULT_EVERY, ScaleInvarianceProbe, attach, make_schedule,
                    training_hook)

__all__ = ["attach", "training_hook", "ScaleInvarianceProbe", "COLUMNS", "DEFAULT_EVERY", "make_schedule",
           "scale_invariance_ground_truth", "numerical_scale_invariance", "Invariance"]

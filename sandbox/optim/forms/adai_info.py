"""``last_info`` of a parameter stepped by the fused Adai kernel: β1 computed on first access.

The kernel does not store Adai's per-element inertia β1 (one more tensor-sized write per step);
the probes read it through ``opt.last_info[p]['beta1']``. It is recomputed on first access from
the state the step left (v, the step counter) and the step's global mean v̄, by the stage's own
formula (:meth:`~sandbox.optim.stages.adai.adaptive_inertia.inertia`), so both forms report the
same numbers. Once a later step has changed the state it is no longer the step's β1: reading it
then raises instead of returning another step's value.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..stages import adaptive_inertia


class AdaiInfo(Mapping):
    def __init__(self, state: dict, vbar, hp: dict, rd: int):
        self._state, self._vbar, self._hp, self._rd = state, vbar, dict(hp), rd
        self._step = float(state["step"])
        self._beta1 = None

    def _compute(self):
        if self._beta1 is None:
            if float(self._state["step"]) != self._step:
                raise RuntimeError(
                    "this β1 belongs to an earlier step: the state has moved on since. Read "
                    "last_info right after the step that made it.")
            v = self._state["exp_avg_sq"]
            self._beta1 = adaptive_inertia.inertia(v, self._vbar, self._step, self._hp, self._rd, v.dtype)
        return self._beta1

    def __getitem__(self, key):
        if key != "beta1":
            raise KeyError(key)
        return self._compute()

    def __iter__(self):
        return iter(("beta1",))

    def __len__(self) -> int:
        return 1

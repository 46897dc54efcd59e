"""The order in which a run visits the training data, and the evaluation schedule.

Seed ``s`` visits, in epoch ``e``, the permutation ``argsort_i h(s, e, i)`` of the training
examples, where ``h`` is the SplitMix64 mixer (Steele, Lea & Flood, "Fast splittable
pseudorandom number generators", OOPSLA 2014) applied to a key built from (s, e, i). The keys
of all K seeds are computed as one (K, n) array, so the stacked engine gets replica k's batches
with whole-array operations and they are exactly the batches of the separate run with seed k;
any epoch's order is computed without replaying earlier ones. The last partial batch of an
epoch is dropped: every step sees ``batch_size`` examples.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on a uint64 array (arithmetic modulo 2^64)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def epoch_permutations(seeds: Sequence[int], epoch: int, n: int) -> Tensor:
    """(K, n) LongTensor: row k is the order of the n examples for ``seeds[k]`` in ``epoch``."""
    s = np.asarray(seeds, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        base = splitmix64(splitmix64(s) ^ splitmix64(np.uint64(epoch) + np.uint64(1) + _GOLDEN))
        keys = splitmix64(base[:, None] + np.arange(n, dtype=np.uint64)[None, :])
    return torch.from_numpy(np.argsort(keys, axis=1, kind="stable"))


class DataOrder:
    """Batch indices of step ``t`` for K seeds: ``order.batch(t)`` is a (K, batch_size) tensor on
    ``device`` (each epoch's permutation is moved there once, not every step)."""

    def __init__(self, n: int, batch_size: int, seeds: Sequence[int], device="cpu"):
        if not 1 <= batch_size <= n:
            raise ValueError(f"invalid batch_size={batch_size}: must be in [1, {n}] (the training set size)")
        self.n, self.batch_size, self.seeds = n, batch_size, [int(s) for s in seeds]
        self.steps_per_epoch = n // batch_size
        self.device = torch.device(device)
        self._epoch, self._perm = -1, None

    def batch(self, step: int) -> Tensor:
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            perm = epoch_permutations(self.seeds, epoch, self.n)
            self._epoch, self._perm = epoch, perm.to(self.device)
        return self._perm[:, i * self.batch_size:(i + 1) * self.batch_size]


def eval_steps(total_steps: int, eval_every: int) -> list[int]:
    """Steps after which to evaluate: 0 (the initial model), every ``eval_every``, and the last."""
    if eval_every < 1:
        raise ValueError(f"invalid eval_every={eval_every}: must be an integer >= 1")
    return sorted(set(range(0, total_steps + 1, eval_every)) | {total_steps})

"""Numba threading for the CPU kernels, chosen so that torch's own thread count is never touched.

- Layer: ``workqueue`` (numba's built-in pool). Numba's OpenMP layer shares libgomp with torch and
  was measured to reset ``torch.get_num_threads()`` (1 → 2) on its first parallel call; the TBB
  layer needs ``libtbb``, which is not installed here. The layer is process-wide and fixed at the
  first parallel launch, so it is set when this module is imported; :func:`launch` checks after
  every kernel call that torch's thread count is what it was and puts it back otherwise.
- Thread count: every call runs on ``min(torch.get_num_threads(), NUMBA_NUM_THREADS)`` threads
  (``numba.set_num_threads`` is per calling thread, so it is set at each call).
- The workqueue layer must not be entered by two threads at once (numba aborts the process), so
  kernel calls hold a lock.
"""
from __future__ import annotations

import threading

import numba
import torch

LAYER = "workqueue"
numba.config.THREADING_LAYER = LAYER
_LOCK = threading.Lock()


def threads() -> int:
    """The number of numba threads a kernel call uses now."""
    return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


def launch(fn, *args):
    """Call the numba kernel ``fn(*args)`` on :func:`threads` threads, under the lock, leaving
    torch's thread count as it was."""
    n_torch = torch.get_num_threads()
    with _LOCK:
        numba.set_num_threads(max(1, min(n_torch, numba.config.NUMBA_NUM_THREADS)))
        try:
            return fn(*args)
        finally:
            if torch.get_num_threads() != n_torch:  # pragma: no cover - guarded by the layer
                torch.set_num_threads(n_torch)


def active_layer() -> str | None:
    """The threading layer numba launched with (None before the first parallel call)."""
    try:
        return numba.threading_layer()
    except ValueError:
        return None

"""Peak extra memory of one optimizer step, beyond parameters, gradients and state.

Measured on a steady-state step (state already allocated):

- CPU: torch's profiler with ``profile_memory=True`` records every allocation and free of the CPU
  allocator with its running total (the ``[memory]`` events of the trace, "Total Allocated"); the
  peak of that total during the step minus its value before the step is the transient extra;
- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the memory
  allocated before the step.

On the CPU the numpy arrays a fused kernel allocates from Python (its layout tables, per-row
scalars) are traced with :mod:`tracemalloc` and added; the per-thread row buffers the compiled
loops allocate inside numba (at most threads × the longest row) are outside both tracers and are
stated analytically in the kernels' docstrings. Buffers an optimizer keeps between steps that are
not state (``persistent_extra_bytes``: none for the sandbox's forms) are added too. The goal
compares the total with the size of the largest parameter tensor.
"""
from __future__ import annotations

import json
import os
import tempfile

import torch


def persistent_extra_bytes(opt) -> int:
    """Scratch an optimizer keeps between steps that is not state (0 when none: the sandbox's
    forms keep none; an optimizer may report its own through ``extra_nbytes()``)."""
    own = getattr(opt, "extra_nbytes", None)
    return int(own()) if callable(own) else 0


def step_peak_extra_bytes(opt, device: torch.device, before_step=None) -> int:
    """Transient peak extra bytes of one ``opt.step()`` (``before_step()`` runs outside)."""
    if before_step is not None:
        before_step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        opt.step()
        torch.cuda.synchronize(device)
        return max(0, torch.cuda.max_memory_allocated(device) - base)
    import tracemalloc

    from torch.profiler import ProfilerActivity, profile

    tracemalloc.start()
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            opt.step()
        numpy_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    finally:
        os.remove(path)
    mem = sorted((e for e in events if e.get("name") == "[memory]"
                  and e.get("args", {}).get("Total Allocated") is not None), key=lambda e: e["ts"])
    if not mem:
        return numpy_peak
    start = mem[0]["args"]["Total Allocated"] - mem[0]["args"]["Bytes"]
    return max(0, max(e["args"]["Total Allocated"] for e in mem) - start) + numpy_peak


def peak_extra_bytes(opt, device: torch.device, before_step=None) -> dict:
    transient = step_peak_extra_bytes(opt, device, before_step)
    kept = persistent_extra_bytes(opt)
    return {"transient_bytes": transient, "kept_bytes": kept, "peak_extra_bytes": transient + kept}

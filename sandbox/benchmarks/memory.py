"""Peak extra memory of one optimizer step, beyond parameters, gradients and state.

Measured on a steady-state step (state already allocated):

- CPU: torch's profiler with ``profile_memory=True`` records every allocation and free of the CPU
  allocator with its running total (the ``[memory]`` events of the trace, "Total Allocated"); the
  peak of that total during the step minus its value before the step is the transient extra;
- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the memory
  allocated before the step.

Buffers an optimizer keeps between steps that are not state (the sandbox fast path's scratch
workspace, :class:`sandbox.optim.fast.plan.Workspace`) are added: they are extra memory too, just not
freed. The goal (issue 7) compares the total with the size of the largest parameter tensor.
"""
from __future__ import annotations

import json
import os
import tempfile

import torch


def persistent_extra_bytes(opt) -> int:
    """Scratch an optimizer keeps between steps that is not state (0 when none)."""
    fast = getattr(opt, "_fast", None)
    return fast.nbytes() if fast is not None else 0


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
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        opt.step()
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
        return 0
    start = mem[0]["args"]["Total Allocated"] - mem[0]["args"]["Bytes"]
    return max(0, max(e["args"]["Total Allocated"] for e in mem) - start)


def peak_extra_bytes(opt, device: torch.device, before_step=None) -> dict:
    transient = step_peak_extra_bytes(opt, device, before_step)
    kept = persistent_extra_bytes(opt)
    return {"transient_bytes": transient, "kept_bytes": kept, "peak_extra_bytes": transient + kept}

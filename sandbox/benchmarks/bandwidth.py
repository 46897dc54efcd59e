"""The machine's copy bandwidth, and the bandwidth an optimizer step achieves against it.

Copy bandwidth: ``y.copy_(x)`` on buffers far larger than the last-level cache (256 MiB on the
CPU, 1 GiB on a GPU), counted as read + write = 2·size bytes, median over repeats; and, for
reference, the bandwidth of an in-place update of one such buffer.

Achieved bandwidth of a step: the MINIMUM traffic of the rule divided by the step time. Every
rule must read p and g and read and write p and each of its S per-parameter state tensors, so the
minimum is (3 + 2S) bytes-per-element × elements: 28 B per fp32 parameter for Adam-type rules
(S = 2), 20 B for SGD with momentum (S = 1), 36 B for Adai (S = 3). A step that makes extra
passes shows up as a lower fraction of the copy bandwidth.
"""
from __future__ import annotations

import time

import numpy as np
import torch


def copy_bandwidth(device: torch.device, repeats: int = 11, nbytes: int | None = None) -> dict:
    """Median and quartiles of the copy bandwidth (``copy_GBps``...) and of an in-place update
    ``x.mul_(1)`` (``inplace_GBps``..., also read + write). On a CPU a copy into another buffer
    also reads the destination's cache lines before writing them (write-allocate), which an
    in-place update does not, so in-place optimizer steps can exceed the "copy" figure."""
    nbytes = nbytes or (1 << 30 if device.type == "cuda" else 1 << 28)
    n = nbytes // 4
    x = torch.ones(n, dtype=torch.float32, device=device)
    y = torch.empty_like(x)
    y.copy_(x)  # first touch
    out = {"buffer_MiB": nbytes / 2**20}
    for name, op in (("copy", lambda: y.copy_(x)), ("inplace", lambda: x.mul_(1.0))):
        rates = []
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            op()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            rates.append(2 * n * 4 / (time.perf_counter() - t0) / 1e9)
        out.update({f"{name}_GBps": float(np.median(rates)),
                    f"{name}_GBps_q25": float(np.quantile(rates, 0.25)),
                    f"{name}_GBps_q75": float(np.quantile(rates, 0.75))})
    del x, y
    return out


def minimum_bytes(numel: int, element_size: int, state_arrays: int) -> int:
    """Read p, g; read and write p and every state tensor: (3 + 2S)·numel·element_size."""
    return (3 + 2 * state_arrays) * numel * element_size

"""Step time of each fused CPU kernel relative to torch's own optimizers, measured side by side.

    python -m sandbox.optim.kernels.speed [--rounds 15] [--threads 1 2]

Two tensor sets (float32): a ResNet-like net (~16M parameters: 3×3 convolutions of 64..512
channels, their BatchNorm weights and biases, a stem, 1×1 downsamples and a classifier) and 1000
small tensors (weights of 4..64 × 4..64 and their bias vectors). Every contender steps the same
parameters with the same gradients and keeps its own state. Conv weights get gradients orthogonal
to them row by row, as behind BatchNorm, so that the projection's channel view fires there (the
printed shares say which views fired); the learning rates are tiny so that this stays true over
the run. ``adamp (layer view)`` makes the gradients orthogonal on whole tensors only: the second
pass of the layer view on every conv weight, the kernel's worst case.

Timing: rounds interleave all contenders (one timed call each, after warm-up and JIT); the table
gives per contender the median over rounds, as a ratio to the median of torch's fused AdamW
(``torch.optim.AdamW(fused=True)``) and, for the SGD family, to ``torch.optim.SGD(momentum=0.9,
foreach=True)`` and to ``SGD(momentum=0.9, fused=True)``. On a shared machine the medians still
move with the load: compare ratios within one run only.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from . import adai_cpu, adam_cpu, numba_setup, rootfree_cpu, sgd_cpu

LR = 1e-7


def resnet_like() -> list[tuple[int, ...]]:
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    stages = ((64, 64, 4), (64, 128, 4), (128, 256, 4), (256, 512, 6))
    for c_in, c_out, n_conv in stages:
        for i in range(n_conv):
            shapes += [(c_out, c_in if i == 0 else c_out, 3, 3), (c_out,), (c_out,)]
        if c_in != c_out:
            shapes += [(c_out, c_in, 1, 1), (c_out,), (c_out,)]
    return shapes + [(1000, 512), (1000,)]


def small_tensors(n: int = 1000, seed: int = 0) -> list[tuple[int, ...]]:
    gen = torch.Generator().manual_seed(seed)
    dims = torch.randint(4, 65, (n // 2, 2), generator=gen).tolist()
    return [s for a, b in dims for s in ((a, b), (a,))]


def make_set(shapes, layer_only: bool = False):
    """Parameters with gradients: conv/linear weights orthogonal to their gradient per row (or
    per tensor with ``layer_only``), vectors random."""
    gen = torch.Generator().manual_seed(1)
    params = [torch.randn(s, generator=gen) for s in shapes]
    for p in params:
        g = torch.randn(p.shape, generator=gen) * 1e-2
        if p.dim() >= 2:
            w, gr = p.reshape(p.shape[0], -1), g.reshape(p.shape[0], -1)
            if layer_only:  # a different multiple of w per row, orthogonal on the whole tensor
                gr.copy_(torch.linspace(-1, 1, w.shape[0]).view(-1, 1) * w * 1e-2 + 1e-3 * gr)
                gr -= w * (w * gr).sum() / (w * w).sum()
            else:
                gr -= w * (w * gr).sum(1, keepdim=True) / (w * w).sum(1, keepdim=True)
        p.grad = g
    return params


def contenders(params):
    """name -> (callable step, baseline names); each keeps its own state."""
    grads = [p.grad for p in params]

    def states():
        return [{} for _ in params]

    def adam(project, decoupled):
        st = states()
        return lambda: adam_cpu.step(params, grads, st, lr=LR, beta1=0.9, beta2=0.999, eps=1e-8,
                                     weight_decay=1e-2, decoupled=decoupled, nesterov=False,
                                     project=project, delta=0.1, wd_ratio=0.1, replica_dims=0,
                                     maximize=False)

    def sgd(project, sgdp):
        st = states()
        return lambda: sgd_cpu.step(params, grads, st, lr=LR, momentum=0.9, dampening=0.0,
                                    weight_decay=1e-4, nesterov=False,
                                    first="zeros" if sgdp else "input", sgdp_decay_scaling=sgdp,
                                    coupled=not sgdp, project=project, project_momentum=sgdp,
                                    delta=0.1, wd_ratio=0.1, eps=1e-8, replica_dims=0,
                                    maximize=False,
                                    buffer_key="momentum" if sgdp else "momentum_buffer")

    def adai(decoupled):
        st = states()

        def step():
            total, count = adai_cpu.reduce(params, grads, st, beta2=0.99, weight_decay=1e-4,
                                           decoupled=decoupled, replica_dims=0, maximize=False)
            adai_cpu.update(params, grads, st, total / count, lr=LR, beta0=0.1, beta2=0.99,
                            eps=1e-3, weight_decay=1e-4, decoupled=decoupled, replica_dims=0,
                            maximize=False)
        return step

    st_rf, st_rms = states(), states()
    torch_opts = {
        "torch AdamW fused": torch.optim.AdamW(params, lr=LR, fused=True),
        "torch SGD foreach": torch.optim.SGD(params, lr=LR, momentum=0.9, foreach=True),
        "torch SGD fused": torch.optim.SGD(params, lr=LR, momentum=0.9, fused=True),
    }
    out = {k: o.step for k, o in torch_opts.items()}
    out.update({
        "adamw": adam(False, True),
        "adamp": adam(True, True),
        "adam + projection (coupled)": adam(True, False),
        "sgd (momentum 0.9)": sgd(False, False),
        "sgd + projection": sgd(True, False),
        "sgdp": sgd(True, True),
        "adai": adai(False),
        "adaiw": adai(True),
        "rfadamw": lambda: rootfree_cpu.rfadamw_step(
            params, grads, st_rf, lr=LR, beta1=0.9, beta2=0.999, eps=1e-4, weight_decay=1e-2,
            batch_size=128, bias_correction=False, maximize=False),
        "rfrmsprop": lambda: rootfree_cpu.rfrmsprop_step(
            params, grads, st_rms, lr=LR, momentum=0.9, lr_cov=1e-3, eps=1e-4, weight_decay=1e-4,
            batch_size=128, maximize=False),
    })
    return out


SGD_FAMILY = ("sgd (momentum 0.9)", "sgd + projection", "sgdp")


def measure(fns: dict, rounds: int, calls: int) -> tuple[dict, dict]:
    """Median and minimum seconds per call of each contender, rounds interleaving them all."""
    for f in fns.values():  # warm-up: JIT, state creation, first-touch of the state
        f()
        f()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                f()
            times[k].append((time.perf_counter() - t0) / calls)
    return ({k: statistics.median(v) for k, v in times.items()},
            {k: min(v) for k, v in times.items()})


def fired(params, step) -> str:
    """Shares of the weights (tensors with 2+ axes) on which each view fired at one more step."""
    codes = [int(c) for p, c in zip(params, step()) if p.dim() >= 2]
    n = len(codes)
    return ", ".join(f"{name} {codes.count(code) / n:.0%}"
                     for code, name in ((1, "channel"), (2, "layer"), (0, "none")))


def report(label: str, shapes, threads: int, rounds: int, calls: int, layer_only=False) -> None:
    torch.set_num_threads(threads)
    params = make_set(shapes, layer_only)
    fns = contenders(params)
    if layer_only:
        keep = ("torch AdamW fused", "adamp")
        fns = {("adamp (layer view)" if k == "adamp" else k): fns[k] for k in keep}
    med, best = measure(fns, rounds, calls)
    n = sum(p.numel() for p in params)
    base, base_min = med["torch AdamW fused"], best["torch AdamW fused"]
    print(f"\n{label}: {len(params)} tensors, {n / 1e6:.1f}M float32 parameters, "
          f"{threads} thread(s) (numba: {numba_setup.threads()}, layer "
          f"{numba_setup.active_layer()}); torch AdamW fused {base * 1e3:.2f} ms "
          f"(min {base_min * 1e3:.2f})")
    print(f"  {'':30s} {'median':>8s} {'ratio of medians to':>34s}   {'ratio of minima to':>26s}")
    print(f"  {'kernel':30s} {'ms':>8s} {'AdamW':>8s} {'SGD foreach':>12s} {'SGD fused':>11s}"
          f"   {'AdamW':>6s} {'SGD foreach':>11s} {'SGD fused':>9s}")
    for k, t in med.items():
        row = f"  {k:30s} {t * 1e3:8.2f} {t / base:8.2f}"
        if k in SGD_FAMILY or k.startswith("torch SGD"):
            row += f" {t / med['torch SGD foreach']:12.2f} {t / med['torch SGD fused']:11.2f}"
        else:
            row += " " * 25
        row += f"   {best[k] / base_min:6.2f}"
        if k in SGD_FAMILY or k.startswith("torch SGD"):
            row += (f" {best[k] / best['torch SGD foreach']:11.2f}"
                    f" {best[k] / best['torch SGD fused']:9.2f}")
        if k != "torch AdamW fused":
            print(row)
    for k in ("adamp", "adamp (layer view)"):
        if k in fns:
            print(f"  {k}: views fired on the weights: {fired(params, fns[k])}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)
    old = torch.get_num_threads()
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
          "(other processes' load moves every timing)")
    try:
        for threads in args.threads:
            report("ResNet-like", resnet_like(), threads, args.rounds, 1)
            report("ResNet-like, layer view", resnet_like(), threads, args.rounds, 1,
                   layer_only=True)
            report("1000 small tensors", small_tensors(), threads, args.rounds, 5)
    finally:
        torch.set_num_threads(old)


if __name__ == "__main__":
    main()

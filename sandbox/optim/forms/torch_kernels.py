"""Chains that ARE torch.optim's SGD / Adam / AdamW run on torch's own fused or foreach kernels.

A chain is dispatched only when its stages are exactly those of the torch rule (checked on the
stage objects, not on the rule's name), with the same hyperparameters and the same state keys
(``momentum_buffer``; ``step``, ``exp_avg``, ``exp_avg_sq``), so state dicts stay
interchangeable with the reference path and with torch.optim:

- ``add_decayed_weights → heavy_ball('momentum_buffer', first='input') → scale_by_lr``:
  torch.optim.SGD (coupled L2, dampening, Nesterov);
- ``add_decayed_weights → scale_by_adam → scale_by_lr``: torch.optim.Adam (coupled L2);
- ``scale_by_adam → add_decayed_weights → scale_by_lr`` without AdamP's Nesterov form:
  torch.optim.AdamW.

On the CPU the fused kernels are used (one pass over p, g and the state). On CUDA torch's foreach
kernels are used: its fused CUDA Adam needs the step counters on the device, while the sandbox
keeps them on the host as the reference does (so no device→host synchronisation either way).
"""
from __future__ import annotations

import operator
from typing import Optional

import torch
import torch.optim.adam as _torch_adam
import torch.optim.sgd as _torch_sgd
from torch import Tensor

from ..stages import add_decayed_weights, heavy_ball, scale_by_adam, scale_by_lr


def torch_kind(stages: tuple, hp) -> Optional[str]:
    """'sgd', 'adam', 'adamw' when the chain is exactly that torch rule, else None.
    (``maximize`` and Adam's ``amsgrad`` are torch's own options: they are passed on.)"""
    kinds = tuple(type(s) for s in stages)
    if kinds == (add_decayed_weights, heavy_ball, scale_by_lr):
        hb = stages[1]
        if not stages[0].sgdp_scaling and hb.key == "momentum_buffer" and hb.first == "input":
            return "sgd"
    if kinds == (add_decayed_weights, scale_by_adam, scale_by_lr) and not stages[0].sgdp_scaling:
        if not hp.get("nesterov", False):
            return "adam"
    if kinds == (scale_by_adam, add_decayed_weights, scale_by_lr) and not stages[1].sgdp_scaling:
        if not hp.get("nesterov", False):
            return "adamw"
    return None


def _dense(t: Tensor) -> bool:
    """True when the tensor's elements fill one gap-free block of memory, each once (any order of
    axes): sorted by stride, each axis's stride is the product of the sizes before it."""
    expected = 1
    for stride, size in sorted((st, sz) for st, sz in zip(t.stride(), t.shape) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


_DTYPE = operator.attrgetter("dtype")


def _one_dtype_and_device(params: list[Tensor]) -> bool:
    """All parameters of one real floating dtype on one device (C-level maps, no Python loop)."""
    dtype, device = params[0].dtype, params[0].get_device()
    return (dtype.is_floating_point and list(map(_DTYPE, params)).count(dtype) == len(params)
            and list(map(Tensor.get_device, params)).count(device) == len(params))


def torch_step(kind: str, params: list[Tensor], states: list[dict], hp,
               dense_state: set | None = None, prefer_foreach: bool = False) -> None:
    """One step of torch.optim's functional rule on ``params`` (all with gradients).

    ``dense_state``: ids of parameters whose state tensors were found contiguous at an earlier
    step; their state is not walked again, which matters with 1000s of tensors. The caller keeps
    the set and clears it whenever the state may have been replaced (``load_state_dict``, a
    dtype, device or shape change). Adam's lists of state tensors are read from the state dicts
    at every step, as torch.optim does: a user may clear or replace ``opt.state`` entries."""
    grads = [p.grad for p in params]
    # torch 2.13's fused CPU kernels walk every tensor as one dense block with the PARAMETER's
    # strides: a gradient or state tensor laid out differently (autograd's transposed gradient of a
    # batched matmul: errors of 0.17), or a parameter that is a strided slice of a bigger buffer
    # (writes past it: errors of 0.06-0.96), gives wrong steps. Its foreach kernels handle any
    # layout, so the fused ones are used only on dense tensors whose layouts all match.
    def dense_like(t: Tensor, p: Tensor) -> bool:
        if t.is_contiguous() and p.is_contiguous():  # the common case, checked in C
            return t.shape == p.shape
        return t.stride() == p.stride() and _dense(t)

    def state_like(p: Tensor, s: dict) -> bool:
        if dense_state is not None and id(p) in dense_state and p.is_contiguous():
            return True  # contiguous state of a contiguous parameter: the same layout
        arrays = [v for v in s.values() if isinstance(v, Tensor) and v.dim() > 0]
        ok = all(dense_like(v, p) for v in arrays)
        if ok and arrays and dense_state is not None and p.is_contiguous() and all(
                v.is_contiguous() for v in arrays):
            dense_state.add(id(p))
        return ok

    fused = params[0].device.type == "cpu" and not prefer_foreach
    # the common case, in C-level loops: contiguous p and p.grad (torch's grad setter and
    # AccumulateGrad guarantee p's shape) and state already found dense
    if fused and not (dense_state is not None and dense_state.issuperset(map(id, params))
                      and all(map(Tensor.is_contiguous, params))
                      and all(map(Tensor.is_contiguous, grads))):
        fused = all(dense_like(p, p) and dense_like(g, p) and state_like(p, s)
                    for p, g, s in zip(params, grads, states))
    if kind == "sgd":
        # torch 2.13's fused CPU SGD silently leaves 16-bit parameters unchanged (measured: a
        # bfloat16/float16 step is a no-op); its foreach kernel is correct there.
        fused = fused and all(p.dtype in (torch.float32, torch.float64) for p in params)
        if not fused and hp["nesterov"] and hp["weight_decay"] == 0:
            # torch's foreach Nesterov adds the buffer INTO its grad list, which here are the
            # p.grad tensors themselves: give it copies (p.grad is never modified).
            grads = [g.clone() for g in grads]
        # torch decides "first step" (b_1 = g) for the whole list: new and old buffers apart
        fresh = [i for i, s in enumerate(states) if "momentum_buffer" not in s]
        for idx in (fresh, [i for i in range(len(states)) if i not in set(fresh)]):
            if not idx:
                continue
            bufs = [states[i].get("momentum_buffer") for i in idx]
            _torch_sgd.sgd(
                [params[i] for i in idx], [grads[i] for i in idx], bufs, foreach=not fused,
                fused=fused, weight_decay=hp["weight_decay"], momentum=hp["momentum"],
                lr=hp["lr"], dampening=hp["dampening"], nesterov=hp["nesterov"],
                maximize=hp["maximize"])
            if hp["momentum"] != 0:
                for i, b in zip(idx, bufs):
                    states[i]["momentum_buffer"] = b
        return
    amsgrad = bool(hp["amsgrad"])
    for p, s in zip(params, states):
        if "step" not in s:
            s["step"] = torch.tensor(0.0, dtype=torch.float32)
            s["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            s["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if amsgrad and "max_exp_avg_sq" not in s:
            s["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    maxes = [s["max_exp_avg_sq"] for s in states] if amsgrad else []
    beta1, beta2 = hp["betas"]
    if fused and _one_dtype_and_device(params):
        # torch's functional fused Adam (torch/optim/adam.py, _fused_adam) for its one group,
        # without its grouping by device and dtype (0.6 ms per step for 1000 tensors): the same
        # kernels in the same order
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1)
        (torch._fused_adamw_ if kind == "adamw" else torch._fused_adam_)(
            params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], maxes,
            steps, amsgrad=amsgrad, lr=hp["lr"], beta1=float(beta1), beta2=float(beta2),
            weight_decay=hp["weight_decay"], eps=hp["eps"], maximize=hp["maximize"],
            grad_scale=None, found_inf=None)
        return
    fn = _torch_adam.adam
    fn(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], maxes,
       [s["step"] for s in states], foreach=not fused, fused=fused,
       decoupled_weight_decay=(kind == "adamw"), amsgrad=amsgrad, beta1=beta1, beta2=beta2,
       lr=hp["lr"], weight_decay=hp["weight_decay"], eps=hp["eps"], maximize=hp["maximize"])
